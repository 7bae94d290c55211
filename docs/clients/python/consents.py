"""Record, list and revoke a person's consents through a samverka gateway,
as a consent registrar's e-service does, from Python.

A registrar acts for a person only with a *person assertion* in each call
(`person_assertion`): a compact JWS (ES256) that the registrar signs with
its person-assertion key for that one call, carrying the person's login
(their OpenID Connect ID token) as evidence. This example makes a fresh one
for every call with jwcrypto; docs/security.md lists what the gateway
checks, gateway/src/person/mod.rs defines the claims and proto/src/terms.rs
the terms text.

Needs Python 3.11 or newer (demo.toml is read with the standard library's
tomllib), grpcio with grpcio-tools, and jwcrypto (which brings
cryptography). Usage (from the repository root):

    cargo run -- demo --serve --dir /tmp/samverka-demo      # in one terminal
    python3 -m venv /tmp/samverka-venv                      # once
    /tmp/samverka-venv/bin/pip install grpcio grpcio-tools jwcrypto
    mkdir -p /tmp/samverka-py
    /tmp/samverka-venv/bin/python -m grpc_tools.protoc -I proto/proto \\
        --python_out=/tmp/samverka-py --grpc_python_out=/tmp/samverka-py \\
        samverka/v1/consent.proto google/rpc/status.proto \\
        google/rpc/error_details.proto
    # The person logs in (a synthetic login from the development identity
    # provider: an ID token for the demo registrar's e-service, valid 5 min).
    cargo run -- certs person-token --demo /tmp/samverka-demo/demo.toml \\
        --subject 199003142388 > /tmp/person.jwt
    PYTHONPATH=/tmp/samverka-py /tmp/samverka-venv/bin/python \\
        docs/clients/python/consents.py /tmp/samverka-demo/demo.toml \\
        grant --person-token /tmp/person.jwt
    ... consents.py /tmp/samverka-demo/demo.toml list --person-token /tmp/person.jwt
    ... consents.py /tmp/samverka-demo/demo.toml revoke CONSENT_ID \\
        --person-token /tmp/person.jwt --reason "withdrawn by the person"

(A venv because Debian's and Ubuntu's python3 refuse `pip install` outside
one: "externally-managed-environment"; `python3 -m venv` needs the
python3-venv package there.)

The commands:

    grant   the token's person consents: --grantee (organisation number),
            --purpose, --types (comma-separated), --days (default 30),
            --evidence-ref, --request-id (default a fresh uuid; repeat one to
            retry without recording a second consent). The grantee, purpose
            and types default to demo.toml's [agency] org_number and
            [subject] purpose and record_types. Prints the receipt.
    list    the person's consents, newest first (--grantee to narrow).
    revoke  CONSENT_ID [--reason TEXT]: prints the receipt.

Each takes --person-token FILE (`-` reads standard input): the person's ID
token, whose personal identity number claim
(https://id.oidc.se/claim/personalIdentityNumber, or the coordination
number's) names the person. The registrar's side is read from demo.toml's
[registrar] table: the gateway's address, its certificate and key (mTLS),
its assertion key (PKCS#8 P-256 PEM), organisation number and the
gateway's audience; --gateway, --ca, --cert, --key, --assertion-key,
--org and --audience override them (and with all of them, no demo.toml is
needed).

The assertion, for each call:

    header  {"alg":"ES256","typ":"samverka-person-assertion+jwt"}
    claims  iss           the registrar's organisation number
            aud           the gateway's audience (person_assertion.audience)
            iat, exp      now, now + 120 (Unix seconds)
            jti           a fresh uuid4: an assertion is single-use
            sub           the person
            action        the gRPC method path, "/samverka.v1.Consents/Grant"
            terms_sha256  base64url (no padding) SHA-256 of the terms text
            evidence      {"id_token": "<the ID token, unchanged>"}

The terms text is the request's fields other than person_assertion, by
their proto names, as JSON with the keys sorted at every level, no
whitespace and non-ASCII characters as themselves (UTF-8), which is exactly

    json.dumps(terms, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

An unset google.protobuf.Timestamp is null, a set one
{"nanos":N,"seconds":N}; repeated fields are lists in the request's order;
an unset string is "" and an unset list []. The gateway computes the same
text from the request it received, so a field changed after signing (or a
different rule, e.g. ensure_ascii=True, which escapes "Ä" as "\\u00c4")
makes the call fail with PERSON_ASSERTION_INVALID. Hash exactly the
request object you send: build it, compute its terms, sign, then set
person_assertion and send it without further changes.

In production an e-service does the same with the ID token it got from
its eID broker: it logs the person in (OpenID Connect, the Swedish OIDC
profile, asking for the personal identity number claim and a level of
assurance), keeps the ID token it received for the session and, for every
call to the gateway, passes that token unchanged as the evidence of a
fresh assertion signed with its assertion key (kept apart from its TLS
key, e.g. in an HSM). It never makes an ID token: `samverka certs
person-token` and the development identity provider exist for the demo
and tests only. When the gateway answers PERSON_LOGIN_STALE (the login is
older than the gateway accepts), the e-service asks the broker to
authenticate the person again.

A refusal is printed decoded from the grpc-status-details-bin trailer
(google.rpc.Status with its google.rpc.ErrorInfo, e.g. "reason
PERSON_ASSERTION_INVALID (domain samverka)" and the audit entry, and
google.rpc.BadRequest details), and the exit code is 1; a bad command line
or a file that cannot be read exits 2.

This file keeps to the syntax of old Python 3 releases, so that an old
release gets the message below rather than a syntax error.
"""

import sys

MIN_PYTHON = (3, 11)


def cannot_run(message):
    sys.stderr.write("consents.py: %s\n" % message)
    sys.exit(2)


if sys.version_info < MIN_PYTHON:
    cannot_run(
        "needs Python %d.%d or newer (it reads demo.toml with tomllib); this is "
        "Python %d.%d. Run it with a newer python3, or in a venv made by one."
        % (MIN_PYTHON + tuple(sys.version_info[:2]))
    )

import argparse  # noqa: E402
import base64  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
import uuid  # noqa: E402

INSTALL = (
    "python3 -m venv /tmp/samverka-venv && "
    "/tmp/samverka-venv/bin/pip install grpcio grpcio-tools jwcrypto"
)

try:
    import grpc
    from google.protobuf import timestamp_pb2
    from jwcrypto import jwk, jws
except ImportError as e:
    cannot_run("%s: install grpcio, grpcio-tools and jwcrypto (%s)" % (e, INSTALL))
try:
    from google.rpc import error_details_pb2, status_pb2
    from samverka.v1 import consent_pb2, consent_pb2_grpc
except ImportError as e:
    cannot_run(
        "%s: generate the stubs with grpc_tools.protoc as this file's docstring "
        "shows, and put their directory on PYTHONPATH" % e
    )

DEFAULT_DEMO = "/tmp/samverka-demo/demo.toml"

ASSERTION_TYPE = "samverka-person-assertion+jwt"
ASSERTION_LIFETIME_S = 120
PERSONAL_IDENTITY_NUMBER = "https://id.oidc.se/claim/personalIdentityNumber"
COORDINATION_NUMBER = "https://id.oidc.se/claim/coordinationNumber"

GRANT = "/samverka.v1.Consents/Grant"
REVOKE = "/samverka.v1.Consents/Revoke"
GET = "/samverka.v1.Consents/Get"
LIST = "/samverka.v1.Consents/List"


# --- The terms text and the assertion ---------------------------------------


def timestamp_terms(message, field):
    """A Timestamp field as the terms have it: null when unset."""
    if not message.HasField(field):
        return None
    t = getattr(message, field)
    return {"nanos": t.nanos, "seconds": t.seconds}


def terms(request):
    """The request's terms: every field but person_assertion, by proto
    name (as proto/src/terms.rs lists them)."""
    if isinstance(request, consent_pb2.GrantConsentRequest):
        return {
            "subject_id": request.subject_id,
            "grantee_agency": request.grantee_agency,
            "record_types": list(request.record_types),
            "purpose": request.purpose,
            "source_agencies": list(request.source_agencies),
            "valid_from": timestamp_terms(request, "valid_from"),
            "valid_until": timestamp_terms(request, "valid_until"),
            "evidence_ref": request.evidence_ref,
            "request_id": request.request_id,
        }
    if isinstance(request, consent_pb2.RevokeConsentRequest):
        return {"consent_id": request.consent_id, "reason": request.reason}
    if isinstance(request, consent_pb2.GetConsentRequest):
        return {"consent_id": request.consent_id}
    if isinstance(request, consent_pb2.ListConsentsRequest):
        return {
            "subject_id": request.subject_id,
            "grantee_agency": request.grantee_agency,
            # Enum values as their numbers.
            "states": list(request.states),
        }
    if isinstance(request, consent_pb2.ApproveConsentRequest):
        return {
            "consent_id": request.consent_id,
            "record_types": list(request.record_types),
            "source_agencies": list(request.source_agencies),
            "valid_until": timestamp_terms(request, "valid_until"),
        }
    if isinstance(request, consent_pb2.RejectConsentRequest):
        return {"consent_id": request.consent_id, "reason": request.reason}
    if isinstance(request, (consent_pb2.PauseConsentRequest, consent_pb2.ResumeConsentRequest)):
        return {"consent_id": request.consent_id}
    raise TypeError("no terms for %s" % type(request).__name__)


def terms_text(request_terms):
    """The canonical text of a request's terms."""
    return json.dumps(request_terms, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def terms_sha256(request):
    return b64url(hashlib.sha256(terms_text(terms(request)).encode("utf-8")).digest())


def person_of(id_token):
    """The person an ID token names (the personal identity number claim,
    else the coordination number), read without checking its signature:
    the registrar got the token from its eID broker, and the gateway checks
    it. None if it names no one."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    return claims.get(PERSONAL_IDENTITY_NUMBER) or claims.get(COORDINATION_NUMBER)


class Registrar(object):
    """Signs person assertions for one registrar: its organisation number,
    the gateway's audience and its assertion key (PKCS#8 P-256 PEM)."""

    def __init__(self, key_pem, org, audience):
        self.key = jwk.JWK.from_pem(key_pem)
        self.org = org
        self.audience = audience

    def assertion(self, action, request, person, id_token, now=None):
        """A fresh assertion for `request` (its terms as they are now), for
        `person`, with the ID token as evidence."""
        iat = int(time.time() if now is None else now)
        claims = {
            "iss": self.org,
            "aud": self.audience,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_S,
            "jti": str(uuid.uuid4()),
            "sub": person,
            "action": action,
            "terms_sha256": terms_sha256(request),
            "evidence": {"id_token": id_token},
        }
        token = jws.JWS(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        token.add_signature(
            self.key, protected=json.dumps({"alg": "ES256", "typ": ASSERTION_TYPE})
        )
        return token.serialize(compact=True)

    def seal(self, action, request, person, id_token):
        """Sets `request`'s person_assertion; send it unchanged."""
        request.person_assertion = self.assertion(action, request, person, id_token)
        return request


# --- The command line --------------------------------------------------------


def settings(argv):
    """The command line: demo.toml (the default one unless --gateway, --ca,
    --cert, --key, --assertion-key, --org and --audience are all given),
    and options that override it."""
    parser = argparse.ArgumentParser(
        description="Grant, list and revoke a person's consents through a samverka gateway."
    )
    parser.add_argument("demo", nargs="?", help="demo.toml (default %s)" % DEFAULT_DEMO)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--person-token",
        required=True,
        metavar="FILE",
        help="the person's ID token from their login (- for standard input)",
    )
    common.add_argument("--gateway", help="host:port of the gateway")
    common.add_argument("--ca", help="trust anchor (PEM)")
    common.add_argument("--cert", help="the registrar's certificate (PEM)")
    common.add_argument("--key", help="the registrar's TLS key (PEM)")
    common.add_argument(
        "--assertion-key", help="the registrar's person-assertion key (PKCS#8 P-256 PEM)"
    )
    common.add_argument("--org", help="the registrar's organisation number (the assertion's iss)")
    common.add_argument("--audience", help="the gateway's person-assertion audience")
    common.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")

    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    grant = commands.add_parser("grant", parents=[common], help="record the person's consent")
    grant.add_argument("--grantee", help="organisation number of the agency that may read")
    grant.add_argument("--purpose", help="the purpose code")
    grant.add_argument("--types", help="record types, comma-separated")
    grant.add_argument("--sources", help="only these source agencies, comma-separated")
    grant.add_argument("--days", type=int, default=30, help="valid for this many days (default 30)")
    grant.add_argument(
        "--evidence-ref", default="", help="the e-service's reference to its evidence"
    )
    grant.add_argument("--request-id", help="idempotency key (default a fresh uuid)")
    listing = commands.add_parser("list", parents=[common], help="the person's consents")
    listing.add_argument("--grantee", help="only consents for this agency")
    revoke = commands.add_parser("revoke", parents=[common], help="revoke a consent")
    revoke.add_argument("consent_id", metavar="CONSENT_ID")
    revoke.add_argument("--reason", default="", help='e.g. "withdrawn by the person"')
    args = parser.parse_args(argv)

    explicit = all(
        (args.gateway, args.ca, args.cert, args.key, args.assertion_key, args.org, args.audience)
    )
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

    registrar = section("registrar")

    def pick(value, fallback, what):
        chosen = value if value is not None else fallback
        if not chosen:
            parser.error("no %s: give --%s or a demo.toml that has it" % (what, what))
        return chosen

    id_token = read_text(args.person_token).strip()
    person = person_of(id_token)
    if not person:
        cannot_run(
            "%s: not an ID token naming a person (%s)"
            % (args.person_token, PERSONAL_IDENTITY_NUMBER)
        )

    s = argparse.Namespace(
        command=args.command,
        gateway=pick(
            args.gateway,
            registrar.get("gateway") or section("gateway").get("address"),
            "gateway",
        ),
        ca=pick(args.ca, section("gateway").get("ca_cert"), "ca"),
        cert=pick(args.cert, registrar.get("cert"), "cert"),
        key=pick(args.key, registrar.get("key"), "key"),
        assertion_key=pick(args.assertion_key, registrar.get("assertion_key"), "assertion-key"),
        org=pick(args.org, registrar.get("org_number"), "org"),
        audience=pick(args.audience, registrar.get("audience"), "audience"),
        timeout=args.timeout,
        id_token=id_token,
        person=person,
    )
    if args.command == "grant":
        if args.days < 1:
            parser.error("--days must be at least 1")
        types = (
            args.types.split(",")
            if args.types is not None
            else section("subject").get("record_types")
        )
        s.grantee = pick(args.grantee, section("agency").get("org_number"), "grantee")
        s.purpose = pick(args.purpose, section("subject").get("purpose"), "purpose")
        s.types = pick(types, None, "types")
        s.sources = args.sources.split(",") if args.sources else []
        s.days = args.days
        s.evidence_ref = args.evidence_ref
        s.request_id = args.request_id or str(uuid.uuid4())
    elif args.command == "list":
        s.grantee = args.grantee or ""
    else:
        s.consent_id = args.consent_id
        s.reason = args.reason
    return s


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        cannot_run(e)


def read_text(path):
    """A file's text, or standard input's for `-`."""
    if path == "-":
        return sys.stdin.read()
    try:
        return read(path).decode("utf-8")
    except UnicodeDecodeError as e:
        cannot_run("%s: %s" % (path, e))


def registrar_of(s):
    try:
        return Registrar(read(s.assertion_key), s.org, s.audience)
    except (ValueError, TypeError) as e:
        cannot_run("%s: not a PKCS#8 P-256 key: %s" % (s.assertion_key, e))


def channel(s):
    """An mTLS channel to the gateway as the registrar."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(s.ca),
        private_key=read(s.key),
        certificate_chain=read(s.cert),
    )
    return grpc.secure_channel(s.gateway, credentials)


# --- Output -------------------------------------------------------------------


def when(message, field):
    return getattr(message, field).ToJsonString() if message.HasField(field) else "-"


def print_consent(c):
    print("consent %s" % c.consent_id)
    print("  status %s" % consent_pb2.Consent.Status.Name(c.status))
    print("  subject %s" % c.subject_id)
    print("  grantee %s" % c.grantee_agency)
    print("  purpose %s" % c.purpose)
    print("  record_types %s" % ",".join(c.record_types))
    print("  sources %s" % (",".join(c.source_agencies) or "any"))
    print("  valid %s to %s" % (when(c, "valid_from"), when(c, "valid_until")))
    print("  registrar %s" % c.registrar_agency)
    print("  granted_at %s" % when(c, "granted_at"))
    if c.evidence_ref:
        # json.dumps shows tabs, newlines and the like visibly.
        print("  evidence_ref %s" % json.dumps(c.evidence_ref, ensure_ascii=False))
    if c.HasField("revoked_at"):
        print("  revoked_at %s" % when(c, "revoked_at"))
        print("  revoked_by %s" % c.revoked_by)
        print("  revocation_reason %s" % json.dumps(c.revocation_reason, ensure_ascii=False))


def print_receipt(receipt):
    print("event %s" % receipt.event)
    print("recorded_at %s" % when(receipt, "recorded_at"))
    print_consent(receipt.consent)
    print("receipt %s" % receipt.jws)


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


# --- The calls ------------------------------------------------------------------


def grant_request(s):
    valid_until = timestamp_pb2.Timestamp(seconds=int(time.time()) + s.days * 24 * 3600)
    return consent_pb2.GrantConsentRequest(
        subject_id=s.person,
        grantee_agency=s.grantee,
        record_types=s.types,
        purpose=s.purpose,
        source_agencies=s.sources,
        valid_until=valid_until,
        evidence_ref=s.evidence_ref,
        request_id=s.request_id,
    )


def main(argv):
    s = settings(argv)
    registrar = registrar_of(s)
    with channel(s) as ch:
        stub = consent_pb2_grpc.ConsentsStub(ch)
        try:
            if s.command == "grant":
                request = registrar.seal(GRANT, grant_request(s), s.person, s.id_token)
                print_receipt(stub.Grant(request, timeout=s.timeout))
            elif s.command == "revoke":
                request = consent_pb2.RevokeConsentRequest(consent_id=s.consent_id, reason=s.reason)
                registrar.seal(REVOKE, request, s.person, s.id_token)
                print_receipt(stub.Revoke(request, timeout=s.timeout))
            else:
                request = consent_pb2.ListConsentsRequest(
                    subject_id=s.person, grantee_agency=s.grantee
                )
                registrar.seal(LIST, request, s.person, s.id_token)
                answer = stub.List(request, timeout=s.timeout)
                print("%d consent(s) for %s" % (len(answer.consents), s.person))
                for c in answer.consents:
                    print_consent(c)
        except grpc.RpcError as error:
            print_refusal(error)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
