"""Print radosgw's total request counter (perf dump -> rgw -> req).

Usage: python3 scripts/rgw/perf_req.py /path/to/client.rgw.NAME.asok

Talks to the daemon's admin socket directly (stdlib only), the same protocol
`ceph daemon SOCKET perf dump` uses: the JSON command plus a NUL byte out, a
4-byte big-endian length plus the JSON reply back. This takes ~30 ms where the
ceph CLI takes ~0.5 s, which matters as tests read the counter around each run.
"""
import json
import socket
import struct
import sys


def admin_command(path: str, command: dict) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(json.dumps(command).encode() + b"\0")
        header = b""
        while len(header) < 4:
            chunk = sock.recv(4 - len(header))
            if not chunk:
                raise RuntimeError("admin socket closed before replying")
            header += chunk
        (length,) = struct.unpack(">I", header)
        body = b""
        while len(body) < length:
            chunk = sock.recv(min(length - len(body), 1 << 20))
            if not chunk:
                raise RuntimeError("admin socket closed mid-reply")
            body += chunk
        return body


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    dump = json.loads(admin_command(sys.argv[1], {"prefix": "perf dump"}))
    print(int(dump["rgw"]["req"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
