"""Read the demo person's records from a running `samverka demo --serve`.

Usage (from the repository root):

    cargo run -- demo --serve --dir /tmp/samverka-demo      # in one terminal
    pip install grpcio grpcio-tools                         # once
    python3 -m grpc_tools.protoc -I proto/proto --python_out=/tmp/samverka-py \
        --grpc_python_out=/tmp/samverka-py \
        samverka/v1/exchange.proto samverka/records/v1/records.proto
    PYTHONPATH=/tmp/samverka-py python3 docs/clients/python/get_records.py /tmp/samverka-demo/demo.toml

Everything the client needs (address, trust anchor, the agency's certificate
and key, the demo person) is read from demo.toml.
"""

import sys
import tomllib

import grpc
from google.protobuf import text_format

from samverka.v1 import exchange_pb2, exchange_pb2_grpc


def main(path: str) -> None:
    with open(path, "rb") as f:
        demo = tomllib.load(f)

    def read(p: str) -> bytes:
        with open(p, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(demo["gateway"]["ca_cert"]),
        private_key=read(demo["agency"]["key"]),
        certificate_chain=read(demo["agency"]["cert"]),
    )
    with grpc.secure_channel(demo["gateway"]["address"], credentials) as channel:
        stub = exchange_pb2_grpc.RecordExchangeStub(channel)
        subject = demo["subject"]
        answer = stub.GetRecords(
            exchange_pb2.GetRecordsRequest(
                subject_id=subject["id"],
                record_types=subject["record_types"],
                purpose=subject["purpose"],
            ),
            timeout=5,
        )
        for record in answer.records:
            print(text_format.MessageToString(record, as_one_line=True, as_utf8=True))
        for outcome in answer.outcomes:
            print(
                outcome.source_name,
                exchange_pb2.SourceOutcome.Status.Name(outcome.status),
                outcome.record_count,
            )
        print("audit entry", answer.audit_id)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/samverka-demo/demo.toml")
