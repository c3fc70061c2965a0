"""`make bench`: runs every benchmark script in this folder and prints one table."""

import sys


def main() -> int:
    print("No benchmarks have landed yet; they arrive with the benchmarks issue.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
