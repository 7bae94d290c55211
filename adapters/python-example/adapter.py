"""A samverka adapter in Python, with nothing but grpcio and the repository's
.proto files: proof that the adapter contract is language-neutral.

It serves a small synthetic register of upper secondary school grades
(record type "education.upper_secondary_grade") and does what every adapter
must do, as `samverka adapter check` verifies:

- mutual TLS, and only callers whose certificate carries samverka's gateway
  role (SAN URI urn:samverka:role:gateway);
- a malformed personal identity number is INVALID_ARGUMENT (check digit and
  date are validated);
- an unknown person is an empty answer, not an error;
- only the requested person's records, only of the requested types.

Usage (from the repository root):

    pip install grpcio grpcio-tools
    python3 adapters/python-example/adapter.py --listen 127.0.0.1:0 \\
        --cert CERTS/adapter-python-example.pem --key CERTS/adapter-python-example.key \\
        --ca CERTS/ca.pem

The first line on stdout names the port: "... serving on 127.0.0.1:PORT".
The stubs are generated from proto/proto at start, into a temporary
directory.
"""

import argparse
import concurrent.futures
import datetime
import os
import signal
import sys
import tempfile

import grpc
from grpc_tools import protoc

AGENCY = "2021999095"
RECORD_TYPE = "education.upper_secondary_grade"
GATEWAY_ROLE = b"urn:samverka:role:gateway"
HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto", "proto")

# Synthetic grades; the people are invented, their numbers have valid
# check digits.
REGISTER = {
    "199003142388": [
        ("usg-1", "MATMAT01c", "Matematik 1c", 100, "A", "2008-06-12"),
        ("usg-2", "ENGENG06", "Engelska 6", 100, "B", "2008-06-12"),
        ("usg-3", "FYSFYS01a", "Fysik 1a", 150, "C", "2009-06-11"),
    ],
    "198511224571": [
        ("usg-10", "SVESVE01", "Svenska 1", 100, "C", "2002-06-14"),
    ],
}


def generate_stubs():
    out = tempfile.mkdtemp(prefix="samverka-py-")
    protos = [
        "samverka/records/v1/records.proto",
        "samverka/adapter/v1/adapter.proto",
    ]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + protos
    )
    if code != 0:
        sys.exit(f"cannot compile the .proto files under {PROTO_ROOT}")
    sys.path.insert(0, out)


def valid_subject(s):
    """A 12-digit personal identity or coordination number with a valid
    date and Luhn check digit."""
    if len(s) != 12 or not s.isdigit():
        return False
    year, month, day = int(s[0:4]), int(s[4:6]), int(s[6:8])
    if day > 60:
        day -= 60  # coordination number
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    total = 0
    for i, ch in enumerate(s[2:11]):
        v = int(ch) * (2 if i % 2 == 0 else 1)
        total += v // 10 + v % 10
    return (10 - total % 10) % 10 == int(s[11])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True)
    args = parser.parse_args()

    generate_stubs()
    from samverka.adapter.v1 import adapter_pb2, adapter_pb2_grpc
    from samverka.records.v1 import records_pb2

    def require_gateway(context):
        auth = context.auth_context()
        names = auth.get("x509_subject_alternative_name", []) + auth.get("x509_uri", [])
        if GATEWAY_ROLE not in names:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "only a samverka gateway may call this adapter")

    class Adapter(adapter_pb2_grpc.AdapterServicer):
        def Describe(self, request, context):
            require_gateway(context)
            return adapter_pb2.AdapterDescription(
                agency_id=AGENCY,
                name="Upper secondary grades (synthetic, Python example)",
                record_types=[RECORD_TYPE],
                sdk_version="python-example",
            )

        def FetchRecords(self, request, context):
            require_gateway(context)
            if not valid_subject(request.subject_id):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "subject_id is not a valid personal identity number")
            unoffered = [t for t in request.record_types if t != RECORD_TYPE]
            if unoffered or not request.record_types:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "record_types: only %s is offered" % RECORD_TYPE)
            records = []
            for rid, code, name, points, grade, date in REGISTER.get(request.subject_id, []):
                records.append(
                    records_pb2.Record(
                        record_type=RECORD_TYPE,
                        subject_id=request.subject_id,
                        source_agency=AGENCY,
                        record_id=rid,
                        upper_secondary_grade=records_pb2.UpperSecondaryGrade(
                            course_code=code,
                            course_name=name,
                            points=points,
                            grade=grade,
                            programme_code="NA",
                            grade_date=date,
                            school_org_number=AGENCY,
                            school_name="Demo gymnasium (synthetic)",
                        ),
                    )
                )
            return adapter_pb2.FetchRecordsResponse(records=records)

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_server_credentials(
        [(read(args.key), read(args.cert))],
        root_certificates=read(args.ca),
        require_client_auth=True,
    )
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
    adapter_pb2_grpc.add_AdapterServicer_to_server(Adapter(), server)
    host = args.listen.rsplit(":", 1)[0]
    port = server.add_secure_port(args.listen, credentials)
    if port == 0:
        sys.exit(f"cannot listen on {args.listen}")
    server.start()
    print(f"samverka adapter python-example (agency {AGENCY}) serving on {host}:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=5))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
