"""Container HEALTHCHECK: the service in this container answers GET /healthz.

The image runs any of the three services or the console, so this probes each one's port (from
BAOVE_<SERVICE>_PORT or its default) and is healthy when one of them answers 200.
"""

import os
import sys
import urllib.request

DEFAULT_PORTS = {"INTAKE": 8001, "ROUTING": 8002, "REPORTING": 8003, "CONSOLE": 8004}


def main() -> int:
    for service, default in DEFAULT_PORTS.items():
        port = os.environ.get(f"BAOVE_{service}_PORT", str(default))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
                if response.status == 200:
                    return 0
        except OSError:
            continue
    return 1


if __name__ == "__main__":
    sys.exit(main())
