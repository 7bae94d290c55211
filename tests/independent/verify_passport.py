#!/usr/bin/env python3
"""An independent verifier of a samverka competence passport, written from
the Open Badges 3.0 / CLR 2.0 specifications, not from samverka's code:
jwcrypto checks the VC-JWT, jsonschema checks 1EdTech's schemas.

    verify_passport.py PASSPORT.jwt GATEWAY_CERT.pem|KEYS.json STANDARDS_DIR [REVOCATIONS.json] [--ca FEDERATION_CA.pem]

With a key set (a JWKS whose keys carry nbf, exp and revoked, as OpenID
Federation's historical key sets do) instead of a certificate, the key
that signed must be in the set, never revoked, and in use at the
credential's nbf (nbf <= t < exp).

With a revocation list (1EdTech Revocation List: id, issuer,
revokedCredentials), the credential's credentialStatus must name that
list, the list must be its issuer's, and the credential must not be in it.

A merit that carries its source's attestation ("attestation": {"jwt",
"x5c"}) must be exactly the VC-JWT's payload, signed (ES256, OB 3.0
header rules) by the key of the certificate in x5c, which names the
agency the merit is issued by (SAN urn:samverka:agency:...) with the
attester role and only the document-signing extended key usage; with
--ca, that certificate must be issued by the federation CA and valid when
the attestation was made. A self-declared merit (recordType
"competence.self_declared", meritKind "self-declared") must be issued by
the holder (the credential subject's id) and carry no attestation, and
only a self-declared merit may be issued by the holder. Any other merit
must be issued by the passport's issuer.

Prints {"valid": true|false, "failed": [...]} and exits 0 when valid, 1
when not.
"""

import base64
import json
import sys
from datetime import datetime

import jsonschema
from cryptography import x509
from jwcrypto import jwk, jws

VC = "https://www.w3.org/ns/credentials/v2"
CLR = "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json"
OB = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
# OB 3.0, "JSON Web Token Proof Format": "Additional JOSE Headers are NOT
# allowed."
ALLOWED_HEADER = {"alg", "typ", "kid", "jwk"}


def b64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def status_failures(credential, list_file):
    """What the 1EdTech Revocation List check finds wrong (empty: in force)."""
    revocations = json.load(open(list_file))
    status = credential.get("credentialStatus") or {}
    if status.get("type") != "1EdTechRevocationList" or status.get("id") != revocations.get("id"):
        return ["status list"]
    issuer = credential.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
    if revocations.get("issuer") != issuer or not isinstance(revocations.get("revokedCredentials"), list):
        return ["status list"]
    entries = revocations["revokedCredentials"]
    if not all(isinstance(r, dict) for r in entries):
        return ["status list"]
    if any(r.get("id") == credential.get("id") for r in entries):
        return ["revoked"]
    return []


AGENCY_URN = "urn:samverka:agency:"
ATTESTER_ROLE = "urn:samverka:role:attester"
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")


def same(a, b):
    """JSON equality without Python's 1 == 1.0 == True."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def attestation_failure(merit, ca, passport_nbf):
    """Why a merit's source attestation does not hold, or None."""
    attestation = merit["attestation"]
    token = attestation.get("jwt", "")
    cert = x509.load_der_x509_certificate(base64.b64decode(attestation["x5c"][0]))
    uris = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier)
    agencies = [u[len(AGENCY_URN):] for u in uris if u.startswith(AGENCY_URN)]
    roles = [u for u in uris if u.startswith("urn:samverka:role:")]
    if len(agencies) != 1 or roles != [ATTESTER_ROLE]:
        return "certificate is not one agency's attester"
    usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    if usages != [DOCUMENT_SIGNING]:
        return "certificate is not for document signing only"
    header_part, payload_part, _ = token.split(".")
    header = json.loads(b64(header_part))
    if set(header) - ALLOWED_HEADER or header.get("alg") != "ES256":
        return "header"
    if "typ" in header and header["typ"] != "JWT":
        return "header typ"
    key = jwk.JWK.from_pyca(cert.public_key())
    if "jwk" not in header or jwk.JWK(**header["jwk"]).thumbprint() != key.thumbprint():
        return "key"
    try:
        signed = jws.JWS()
        signed.deserialize(token)
        signed.verify(key, alg="ES256")
    except Exception:  # jwcrypto raises several kinds
        return "signature"
    payload = json.loads(b64(payload_part))
    shown = {k: v for k, v in merit.items() if k != "attestation"}
    if not same(payload, shown):
        return "not what the source signed"
    urn = AGENCY_URN + agencies[0]
    if payload.get("issuer", {}).get("id") != urn or payload.get("iss") != urn:
        return "issued in another name than the attester's"
    nbf = payload.get("nbf")
    if type(nbf) is not int or not isinstance(passport_nbf, int):
        return "no nbf"
    # Made during the passport's read: at most 10 minutes before it, and
    # a minute after (clocks).
    if not passport_nbf - 600 <= nbf <= passport_nbf + 60:
        return "attested at another time than the passport's read"
    if payload.get("source", {}).get("agency") != agencies[0]:
        return "source is not the attester"
    if ca is not None:
        try:
            cert.verify_directly_issued_by(ca)
        except Exception:  # signature or issuer mismatch
            return "certificate not issued by the federation CA"
        at = datetime.fromtimestamp(nbf, tz=cert.not_valid_before_utc.tzinfo)
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            return "certificate not valid when it attested"
    return None


FORMAL = {
    "education.course_result",
    "education.degree",
    "education.upper_secondary_grade",
    "education.vocational_diploma",
}


def merit_kind(record_type):
    """samverka's meritKind for a record type (docs/competence-passport.md,
    "Kinds of merit")."""
    record_type = record_type if isinstance(record_type, str) else ""
    if record_type == "competence.self_declared":
        return "self-declared"
    if record_type == "competence.validated":
        return "validated"
    if record_type == "education.non_formal":
        return "non-formal"
    if record_type in FORMAL:
        return "formal"
    if record_type.startswith("employment."):
        return "work-experience"
    return "other"


def source_failures(credential, ca_file, passport_nbf):
    """Each merit: about the passport's holder, and attested by its source
    or issued by the passport's issuer."""
    ca = None
    if ca_file is not None:
        ca = x509.load_pem_x509_certificate(open(ca_file, "rb").read())
    failed = []
    merits = credential.get("credentialSubject", {}).get("verifiableCredential", [])
    subject = credential.get("credentialSubject", {})
    for i, merit in enumerate(merits):
        about = merit.get("credentialSubject", {})
        if not same(about.get("id"), subject.get("id")) or not same(
            about.get("identifier"), subject.get("identifier")
        ):
            failed.append("holder of merit %d" % i)
        issuer = merit.get("issuer", {}).get("id")
        declared = merit.get("recordType") == "competence.self_declared"
        kind = merit_kind(merit.get("recordType"))
        # A merit from before merits said their kind has none; a
        # self-declared merit always says so.
        if merit.get("meritKind", "absent" if not declared else "") not in ("absent", kind):
            failed.append("kind of merit %d" % i)
        if declared or issuer == subject.get("id"):
            if not declared or "attestation" in merit or issuer != subject.get("id"):
                failed.append("self-declared merit %d presented as attested" % i)
        elif "attestation" in merit:
            try:
                why = attestation_failure(merit, ca, passport_nbf)
            except Exception as e:  # malformed: missing fields, bad base64
                why = "malformed (%s)" % type(e).__name__
            if why is not None:
                failed.append("source attestation of merit %d: %s" % (i, why))
        elif merit.get("issuer", {}).get("id") != credential.get("issuer", {}).get("id"):
            failed.append("issuer of merit %d" % i)
    return failed


def main(token_file, cert_file, standards, list_file=None, ca_file=None):
    token = open(token_file).read().strip()
    failed = []
    header_part, payload_part, _ = token.split(".")
    header = json.loads(b64(header_part))
    claims = json.loads(b64(payload_part))

    # The header: only the allowed fields, ES256 or RS256, the key in jwk.
    if set(header) - ALLOWED_HEADER:
        failed.append("header fields %s" % sorted(set(header) - ALLOWED_HEADER))
    if header.get("alg") not in ("ES256", "RS256"):
        failed.append("alg")
    if "typ" in header and header["typ"] != "JWT":
        failed.append("typ")

    # The jwk is the certificate's key (or one of the key set's, valid when
    # the credential was issued), and the signature holds under it.
    text = open(cert_file, "rb").read()
    signer = jwk.JWK(**header["jwk"]) if "jwk" in header else None
    if text.lstrip().startswith(b"{"):
        # Every certificate of the set holding the signer's key: revoked
        # under any of them, the key is invalid; else one of them must have
        # been in use at nbf.
        matching = []
        for key in json.loads(text)["keys"]:
            cert = x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
            candidate = jwk.JWK.from_pyca(cert.public_key())
            if signer is not None and candidate.thumbprint() == signer.thumbprint():
                matching.append((candidate, key))
        trusted = matching[0][0] if matching else None
        nbf = claims.get("nbf")

        def in_use(key):
            exp = key.get("exp")
            return (
                isinstance(nbf, int)
                and isinstance(key.get("nbf"), int)
                and nbf >= key["nbf"]
                and (exp is None or (isinstance(exp, int) and nbf < exp))
            )

        if not matching:
            failed.append("key")
        elif any(key.get("revoked") is not None for _, key in matching):
            failed.append("key validity")
        elif not any(in_use(key) for _, key in matching):
            failed.append("key validity")
    else:
        cert = x509.load_pem_x509_certificate(text)
        trusted = jwk.JWK.from_pyca(cert.public_key())
        if signer is None or signer.thumbprint() != trusted.thumbprint():
            failed.append("key")
    try:
        signed = jws.JWS()
        signed.deserialize(token)
        signed.verify(trusted, alg=header.get("alg"))  # None: raises
    except Exception:  # jwcrypto raises several kinds
        failed.append("signature")

    # The claims: iss, jti, nbf, sub as the credential says.
    expect = {
        "iss": claims.get("issuer", {}).get("id"),
        "jti": claims.get("id"),
        "sub": claims.get("credentialSubject", {}).get("id"),
    }
    for name, value in expect.items():
        if claims.get(name) is None or claims.get(name) != value:
            failed.append("claim " + name)
    valid_from = claims.get("validFrom", "")
    try:
        nbf = int(datetime.fromisoformat(valid_from.replace("Z", "+00:00")).timestamp())
    except ValueError:
        nbf = None
    if claims.get("nbf") is None or claims.get("nbf") != nbf:
        failed.append("claim nbf")

    # The contexts, and the schemas: the CLR and each credential in it.
    if claims.get("@context") != [VC, CLR, OB]:
        failed.append("contexts")
    credential = {k: v for k, v in claims.items() if k not in ("iss", "jti", "nbf", "sub")}
    checker = jsonschema.Draft201909Validator.FORMAT_CHECKER

    def valid(schema_file, instance):
        schema = json.load(open("%s/schemas/%s" % (standards, schema_file)))
        validator = jsonschema.Draft201909Validator(schema, format_checker=checker)
        return not list(validator.iter_errors(instance))

    if not valid("clr_v2p0_clrcredential_schema.json", credential):
        failed.append("schema ClrCredential")
    for i, merit in enumerate(credential.get("credentialSubject", {}).get("verifiableCredential", [])):
        if merit.get("@context") != [VC, OB]:
            failed.append("contexts of merit %d" % i)
        if not valid("ob_v3p0_achievementcredential_schema.json", merit):
            failed.append("schema of merit %d" % i)

    failed += source_failures(credential, ca_file, claims.get("nbf"))

    if list_file is not None:
        failed += status_failures(credential, list_file)

    print(json.dumps({"valid": not failed, "failed": failed}))
    return 0 if not failed else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    ca_file = None
    if "--ca" in args:
        at = args.index("--ca")
        ca_file = args[at + 1]
        del args[at : at + 2]
    sys.exit(main(*args[:4], ca_file=ca_file))
