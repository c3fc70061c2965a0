"""``python -m stripe_emulator --host 127.0.0.1 --port 12111 [--state FILE]
[--fault-rate 0.2 --fault-statuses 429,500 --latency-ms 30]
[--forward-webhooks https://meterdesk.example=http://127.0.0.1:8000]``"""

from __future__ import annotations

import argparse
import signal
import sys

from .app import Emulator
from .faults import Faults
from .forwarding import Forwarding, parse_rule
from .request_log import RequestLog
from .server import make_server


def _forward_rule(text: str) -> tuple[str, str]:
    try:
        return parse_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stripe_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state", help="JSON file the state is loaded from and saved to")
    parser.add_argument("--public-url", help="base URL for hosted pages (default http://host:port)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="0..1 share of faulted calls")
    parser.add_argument("--fault-statuses", default="500", help="e.g. 429,500")
    parser.add_argument("--fault-seed", type=int, default=None)
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every API call")
    parser.add_argument("--webhook-retry-base", type=float, default=0.2, help="seconds")
    parser.add_argument(
        "--forward-webhooks",
        metavar="FROM=TO",
        action="append",
        default=[],
        type=_forward_rule,
        help="deliver events for endpoints whose URL starts with FROM to TO instead "
        "(like stripe listen --forward-to); repeatable",
    )
    parser.add_argument(
        "--meter-error-delay",
        type=float,
        default=0.5,
        help="seconds (real time) before meter event errors are reported as a "
        "v1.billing.meter.error_report_triggered thin event",
    )
    parser.add_argument(
        "--invoice-finalize-delay",
        type=int,
        default=3600,
        help="seconds of clock time a renewal invoice stays a draft before it is "
        "finalized and charged (Stripe: about an hour)",
    )
    parser.add_argument(
        "--stream-delay",
        type=float,
        default=0.5,
        help="seconds (real time) after its answer before a v2 meter event stream "
        "request's events are validated and counted",
    )
    parser.add_argument("--tick", type=float, default=1.0, help="real-time period check, seconds")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument(
        "--log-requests",
        metavar="FILE",
        help="append every /v1 and /v2 request (method, path, params, status) as JSON lines",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    faults = Faults(
        args.fault_rate, args.fault_statuses.split(","), args.latency_ms, args.fault_seed
    )
    base_url = args.public_url or f"http://{args.host}:{args.port}"
    emulator = Emulator(
        state_file=args.state,
        base_url=base_url.rstrip("/"),
        faults=faults,
        webhook_retry_base=args.webhook_retry_base,
        tick_seconds=args.tick,
        forwarding=Forwarding(args.forward_webhooks),
        request_log=RequestLog(args.log_requests) if args.log_requests else None,
        meter_error_delay=args.meter_error_delay,
        invoice_finalize_delay=args.invoice_finalize_delay,
        stream_delay=args.stream_delay,
    )
    server = make_server(emulator, args.host, args.port, verbose=args.verbose)
    emulator.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"stripe_emulator listening on {base_url}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        emulator.stop()
        emulator.store.save()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
