# Settings of the compose path on podman (deploy/compose/*). Sourced after deploy/local/env.sh,
# whose STINT_CACHE it uses. Every value can be overridden from the environment.

# Our own podman configuration (runc, ulimits within the host's hard limits), given to every
# podman call and to the API service through CONTAINERS_CONF, so /etc/containers stays untouched.
export CONTAINERS_CONF=${STINT_CONTAINERS_CONF:-$compose_dir/containers.conf}
# The Docker API that podman serves and that docker-compose talks to.
STINT_PODMAN_SOCKET=${STINT_PODMAN_SOCKET:-/run/podman/podman.sock}
# The debootstrapped rootfs tarballs are kept here between runs (about 2 minutes to make again).
STINT_COMPOSE_CACHE=${STINT_COMPOSE_CACHE:-$STINT_CACHE/compose}
# Apicurio Registry as deploy/local/bootstrap builds it (a Quarkus fast-jar).
STINT_REGISTRY_APP=${STINT_REGISTRY_APP:-${REGISTRY_APP:-$STINT_CACHE/apicurio-registry-2.4.2.Final/quarkus-app}}
# Debian release of the base images, and the mirror debootstrap and the images' apt use (default:
# the host's own Debian mirror, see debian_mirror in images).
STINT_DEBIAN_SUITE=${STINT_DEBIAN_SUITE:-bookworm}
STINT_DEBIAN_MIRROR=${STINT_DEBIAN_MIRROR:-}
# Pid files and logs of deploy/compose/engine (the podman API service, the healthcheck runner).
STINT_COMPOSE_RUN=${STINT_COMPOSE_RUN:-/run/stint-compose}
