# Finds stint's libraries through pkg-config. A missing one stops the configure step with the name of
# the Debian package that provides it (deploy/local/bootstrap installs them all).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

function(stint_require_pkg target pcname debpkg)
  pkg_check_modules(${target} QUIET IMPORTED_TARGET ${pcname})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR "stint needs ${pcname} (pkg-config). Install the Debian package '${debpkg}': "
                        "sudo apt-get install ${debpkg}   (or run deploy/local/bootstrap)")
  endif()
  message(STATUS "Found ${pcname} ${${target}_VERSION}")
endfunction()

# librdkafka: the pinned build deploy/local/build-librdkafka makes (2.12.1; bootstrap runs it into
# stint's cache, the image's build stage into /opt/librdkafka), else the system's librdkafka-dev.
# STINT_RDKAFKA_PREFIX names it; the default is deploy/local/env.sh's: $STINT_RDKAFKA_PREFIX, else
# ${STINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stint}/librdkafka. Its rdkafka.pc is given to
# pkg-config by path (so a build directory first configured without it switches once it exists)
# and its lib/ goes on the programs' RPATH.
if(NOT STINT_RDKAFKA_PREFIX)
  if(DEFINED ENV{STINT_RDKAFKA_PREFIX})
    set(_stint_rdk_prefix "$ENV{STINT_RDKAFKA_PREFIX}")
  elseif(DEFINED ENV{STINT_CACHE})
    set(_stint_rdk_prefix "$ENV{STINT_CACHE}/librdkafka")
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(_stint_rdk_prefix "$ENV{XDG_CACHE_HOME}/stint/librdkafka")
  else()
    set(_stint_rdk_prefix "$ENV{HOME}/.cache/stint/librdkafka")
  endif()
  set(STINT_RDKAFKA_PREFIX "${_stint_rdk_prefix}" CACHE PATH "librdkafka built by deploy/local/build-librdkafka")
endif()
set(_stint_rdk_pc "${STINT_RDKAFKA_PREFIX}/lib/pkgconfig/rdkafka.pc")
if(EXISTS "${_stint_rdk_pc}")
  pkg_check_modules(RDKAFKA QUIET IMPORTED_TARGET "${_stint_rdk_pc}")
  if(NOT RDKAFKA_FOUND)
    message(FATAL_ERROR "pkg-config cannot use ${_stint_rdk_pc} (its Requires.private: the -dev "
                        "packages of deploy/local/packages.txt; run deploy/local/bootstrap)")
  endif()
  list(APPEND CMAKE_BUILD_RPATH "${STINT_RDKAFKA_PREFIX}/lib")
  list(APPEND CMAKE_INSTALL_RPATH "${STINT_RDKAFKA_PREFIX}/lib")
  message(STATUS "Found rdkafka ${RDKAFKA_VERSION} in ${STINT_RDKAFKA_PREFIX}")
else()
  stint_require_pkg(RDKAFKA rdkafka librdkafka-dev)
endif()
if(RDKAFKA_VERSION VERSION_LESS 2.2)
  message(WARNING "librdkafka ${RDKAFKA_VERSION} has no fetch.queue.backoff.ms: a consumer whose "
                  "prefetch queue fills stops fetching for ~1 s, so it catches up slower "
                  "(the 18.7 M-listen year: 358 s against 243-282, docs/deployment.md). "
                  "deploy/local/bootstrap builds 2.12.1 into ${STINT_RDKAFKA_PREFIX}; then "
                  "configure again.")
endif()
stint_require_pkg(AVRO avro-c libavro-dev)
stint_require_pkg(JANSSON jansson libjansson-dev)
stint_require_pkg(OPENBLAS openblas libopenblas-dev)
stint_require_pkg(LAPACKE lapacke liblapacke-dev)
stint_require_pkg(XGBOOST xgboost libxgboost-dev)
stint_require_pkg(HIREDIS hiredis libhiredis-dev)
stint_require_pkg(CURL libcurl libcurl4-openssl-dev)
stint_require_pkg(MHD libmicrohttpd libmicrohttpd-dev)
