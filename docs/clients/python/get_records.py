"""Read a person's records through a samverka gateway, from Python.

Needs Python 3.11 or newer (demo.toml is read with the standard library's
tomllib) and grpcio with grpcio-tools. Usage (from the repository root):

    cargo run -- demo --serve --dir /tmp/samverka-demo      # in one terminal
    python3 -m venv /tmp/samverka-venv                      # once
    /tmp/samverka-venv/bin/pip install grpcio grpcio-tools
    mkdir -p /tmp/samverka-py
    /tmp/samverka-venv/bin/python -m grpc_tools.protoc -I proto/proto \\
        --python_out=/tmp/samverka-py --grpc_python_out=/tmp/samverka-py \\
        samverka/v1/exchange.proto samverka/records/v1/records.proto \\
        google/rpc/status.proto google/rpc/error_details.proto
    PYTHONPATH=/tmp/samverka-py /tmp/samverka-venv/bin/python \\
        docs/clients/python/get_records.py /tmp/samverka-demo/demo.toml

(A venv because Debian's and Ubuntu's python3 refuse `pip install` outside
one: "externally-managed-environment"; `python3 -m venv` needs the
python3-venv package there.)

Everything the client needs (the gateway's address, the trust anchor, the
agency's certificate and key, the demo person) is read from demo.toml. Each
can be given instead, or on top of it:

    ... get_records.py --gateway localhost:PORT --ca certs/ca.pem \\
        --cert certs/agency-reader.pem --key certs/agency-reader.key \\
        --subject 199003142388 --purpose study_guidance \\
        --types education.course_result,employment.period

It prints each record on one line, then each source's outcome
("employment OK 2") and the audit entry. A refusal is printed decoded from
the grpc-status-details-bin trailer (google.rpc.Status with its
google.rpc.ErrorInfo and google.rpc.BadRequest details), and the exit code
is 1; a bad command line or a file that cannot be read exits 2.

This file keeps to the syntax of old Python 3 releases, so that an old
release gets the message below rather than a syntax error.
"""

import sys

MIN_PYTHON = (3, 11)


def cannot_run(message):
    sys.stderr.write("get_records.py: %s\n" % message)
    sys.exit(2)


if sys.version_info < MIN_PYTHON:
    cannot_run(
        "needs Python %d.%d or newer (it reads demo.toml with tomllib); this is "
        "Python %d.%d. Run it with a newer python3, or in a venv made by one."
        % (MIN_PYTHON + tuple(sys.version_info[:2]))
    )

import argparse  # noqa: E402
import tomllib  # noqa: E402

try:
    import grpc
    from google.protobuf import text_format
except ImportError as e:
    cannot_run(
        "%s: install grpcio and grpcio-tools (python3 -m venv /tmp/samverka-venv && "
        "/tmp/samverka-venv/bin/pip install grpcio grpcio-tools)" % e
    )
try:
    from google.rpc import error_details_pb2, status_pb2
    from samverka.v1 import exchange_pb2, exchange_pb2_grpc
except ImportError as e:
    cannot_run(
        "%s: generate the stubs with grpc_tools.protoc as this file's docstring "
        "shows, and put their directory on PYTHONPATH" % e
    )

DEFAULT_DEMO = "/tmp/samverka-demo/demo.toml"


def settings(argv):
    """The command line: demo.toml (the default one unless --gateway, --ca,
    --cert and --key are all given), and options that override it."""
    parser = argparse.ArgumentParser(description="Read records through a samverka gateway.")
    parser.add_argument("demo", nargs="?", help="demo.toml (default %s)" % DEFAULT_DEMO)
    parser.add_argument("--gateway", help="host:port of the gateway")
    parser.add_argument("--ca", help="trust anchor (PEM)")
    parser.add_argument("--cert", help="the agency's certificate (PEM)")
    parser.add_argument("--key", help="the agency's key (PEM)")
    parser.add_argument("--subject", help="the person (12 digits)")
    parser.add_argument("--purpose", help="the purpose the person consented to")
    parser.add_argument("--types", help="record types, comma-separated")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    args = parser.parse_args(argv)

    explicit = args.gateway and args.ca and args.cert and args.key
    path = args.demo or (None if explicit else DEFAULT_DEMO)
    demo = {}
    if path:
        try:
            with open(path, "rb") as f:
                demo = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            cannot_run("%s: %s" % (path, e))

    def section(name):
        return demo.get(name, {})

    def pick(value, fallback, what):
        chosen = value if value is not None else fallback
        if not chosen:
            parser.error("no %s: give --%s or a demo.toml that has it" % (what, what))
        return chosen

    types = args.types.split(",") if args.types is not None else section("subject").get("record_types")
    return argparse.Namespace(
        # [agency] gateway is the address to call, by the name the gateway's
        # certificate holds (localhost:PORT); [gateway] address is where the
        # gateway listens, for a demo.toml without the former.
        gateway=pick(
            args.gateway,
            section("agency").get("gateway") or section("gateway").get("address"),
            "gateway",
        ),
        ca=pick(args.ca, section("gateway").get("ca_cert"), "ca"),
        cert=pick(args.cert, section("agency").get("cert"), "cert"),
        key=pick(args.key, section("agency").get("key"), "key"),
        subject=pick(args.subject, section("subject").get("id"), "subject"),
        purpose=pick(args.purpose, section("subject").get("purpose"), "purpose"),
        types=pick(types, None, "types"),
        timeout=args.timeout,
    )


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        cannot_run(e)


def print_refusal(error):
    """A refusal, decoded: the gRPC status and, from the
    grpc-status-details-bin trailer, the google.rpc.Status with its
    ErrorInfo (why, and the audit entry that recorded the refusal) and
    BadRequest (which field) details."""
    print('refused: %s "%s"' % (error.code().name, error.details()))
    trailer = [v for k, v in (error.trailing_metadata() or ()) if k == "grpc-status-details-bin"]
    if not trailer:
        print("  (no error details)")
        return
    status = status_pb2.Status.FromString(trailer[0])
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            print("  reason %s (domain %s)" % (info.reason, info.domain))
            for key, value in sorted(info.metadata.items()):
                print("  %s %s" % (key, value))
        elif detail.Unpack(bad_request):
            for v in bad_request.field_violations:
                print("  field %s: %s" % (v.field, v.description))
        else:
            print("  %s (not decoded)" % detail.type_url)


def main(argv):
    s = settings(argv)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(s.ca),
        private_key=read(s.key),
        certificate_chain=read(s.cert),
    )
    with grpc.secure_channel(s.gateway, credentials) as channel:
        stub = exchange_pb2_grpc.RecordExchangeStub(channel)
        try:
            answer = stub.GetRecords(
                exchange_pb2.GetRecordsRequest(
                    subject_id=s.subject, record_types=s.types, purpose=s.purpose
                ),
                timeout=s.timeout,
            )
        except grpc.RpcError as error:
            print_refusal(error)
            return 1
    for record in answer.records:
        print(text_format.MessageToString(record, as_one_line=True, as_utf8=True))
    for outcome in answer.outcomes:
        print(
            outcome.source_name,
            exchange_pb2.SourceOutcome.Status.Name(outcome.status),
            outcome.record_count,
        )
    print("audit entry", answer.audit_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
