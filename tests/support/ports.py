"""Free TCP ports on 127.0.0.1 for the servers a test or benchmark starts.

A port is taken outside the kernel's ephemeral range (net.ipv4.ip_local_port_range): a port
inside it that is free when probed can be given to any outgoing connection (a service's own
connection to Kafka or Redis, say) before the server binds it, and the server then fails with
"address in use". Outside that range only another listener can take it, which the probe sees."""
import random
import socket

LOWEST = 10000


def ephemeral_range():
    """(first, last) port the kernel hands out for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            first, last = (int(x) for x in f.read().split())
        return first, last
    except (OSError, ValueError):
        return 32768, 60999


def base_ranges(n, ephemeral=None):
    """Inclusive (low, high) ranges of base ports b whose block b .. b+n-1 lies outside the
    ephemeral range and within LOWEST .. 65535."""
    first, last = ephemeral or ephemeral_range()
    ranges = [(LOWEST, first - n), (last + 1, 65536 - n)]
    return [(lo, hi) for lo, hi in ranges if hi >= lo]


def free_port_block(n):
    """A base port b with b .. b+n-1 all free now and outside the ephemeral range."""
    # A kernel whose ephemeral range leaves no room outside it: anywhere, as before.
    ranges = base_ranges(n) or [(LOWEST, 65536 - n)]
    weights = [hi - lo + 1 for lo, hi in ranges]
    for _ in range(500):
        lo, hi = random.choices(ranges, weights)[0]
        base = random.randint(lo, hi)
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {n} free ports on 127.0.0.1")


def free_ports(n):
    """n distinct free ports (one block)."""
    base = free_port_block(n)
    return list(range(base, base + n))


def free_port():
    """One free port."""
    return free_port_block(1)


if __name__ == "__main__":
    import sys
    print(free_port_block(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
