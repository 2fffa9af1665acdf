# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small certificate authority for etcd's TLS, through the openssl command line (no Python dependency).

Keys are born where they are used: ``make_key`` and ``make_csr`` run on the host, only the request leaves
it; ``ensure_ca`` and ``sign`` run on the controller, where the CA key stays. ``sign`` takes the names and
the usage from its caller, never from the request, so a request cannot ask for more than the inventory
gives. ``certificate_problems`` says why a host's certificate must be issued again (missing, another key,
another CA, other names, expiring), or nothing when it is fine, so a second run signs nothing.
"""

import ipaddress
import os
import re
import secrets
import tempfile
import time

__all__ = ["use", "TlsError", "name_error", "san_error", "make_key", "make_csr", "ensure_ca", "sign",
           "certificate_problems", "USAGES"]

NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?\Z")
USAGES = {"server_client": "serverAuth,clientAuth", "client": "clientAuth"}


class TlsError(Exception):
    pass


def name_error(name, where="common_name"):
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        return ("%s: %r is not a certificate name: letters, digits, '.' and '-', not at either end, at most 64 "
                "characters (a host or member name)" % (where, name))
    return None


def san_error(sans, where="subject_alt_names"):
    if not isinstance(sans, list):
        return "%s: give a list of host names and IP addresses; got %r" % (where, sans)
    for i, san in enumerate(sans):
        if isinstance(san, str) and (_is_ip(san) or name_error(san) is None):
            continue
        return ("%s[%d]: %r is neither an IP address nor a host name (letters, digits, '.' and '-')"
                % (where, i, san))
    return None


def _is_ip(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


_RUN = []


def use(run_command):
    """Route every openssl call through ``run_command(args, data=None) -> (rc, stdout, stderr)``: a module
    passes ``AnsibleModule.run_command``, a script its own runner. Returns the previous one."""
    previous = _RUN[0] if _RUN else None
    _RUN[:] = [run_command]
    return previous


def _openssl(args, stdin=None):
    if not _RUN:
        raise TlsError("tls_ca: no command runner: call tls_ca.use(run_command) first")
    try:
        rc, out, err = _RUN[0](["openssl"] + args, data=stdin)
    except OSError as exc:
        raise TlsError("openssl could not run (%s): install the openssl package" % exc) from exc
    if rc != 0:
        raise TlsError("openssl %s failed: %s" % (args[0], (err or out).strip()[-600:]))
    return out


def _write_private(path, writer):
    """Create a private file atomically (mode 0600 from the start): ``writer(tmp_path)`` fills it."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    os.close(fd)
    try:
        os.chmod(tmp, 0o600)
        writer(tmp)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_key(path):
    """A new EC P-256 private key at ``path`` (mode 0600); the key never leaves the machine."""
    _write_private(path, lambda tmp: _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt",
                                               "ec_paramgen_curve:P-256", "-out", tmp]))


def make_csr(key_path, common_name):
    error = name_error(common_name)
    if error:
        raise TlsError(error)
    return _openssl(["req", "-new", "-key", key_path, "-subj", "/CN=" + common_name, "-sha256"])


def _public_key(args, stdin=None):
    return _openssl(args, stdin=stdin).strip()


def _issue(ca_key, ca_cert, csr_pem, common_name, extensions, days):
    """``openssl ca`` (not ``x509 -req``: only it sets the start of validity, which goes back an hour so that
    a host whose clock is a little behind the controller's accepts a certificate signed a moment ago).
    ``ca_cert`` None: self-signed (the CA itself)."""
    def utc(offset):
        return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() + offset))
    with tempfile.TemporaryDirectory() as tmp:
        cnf, csr, out = (os.path.join(tmp, n) for n in ("ca.cnf", "req.pem", "cert.pem"))
        for name, text in (("index.txt", ""), ("serial", secrets.token_hex(16) + "\n"), ("req.pem", csr_pem)):
            with open(os.path.join(tmp, name), "w", encoding="ascii") as f:
                f.write(text)
        with open(cnf, "w", encoding="ascii") as f:
            f.write("[ca]\ndefault_ca = smc\n[smc]\ndatabase = %s/index.txt\nserial = %s/serial\nnew_certs_dir = %s\n"
                    "default_md = sha256\npolicy = by_name\nunique_subject = no\ncopy_extensions = none\n"
                    "x509_extensions = ext\n[by_name]\ncommonName = supplied\n[ext]\n%s\n"
                    % (tmp, tmp, tmp, "\n".join(extensions)))
        signer = ["-selfsign"] if ca_cert is None else ["-cert", ca_cert]
        _openssl(["ca", "-batch", "-config", cnf, "-keyfile", ca_key, "-in", csr, "-out", out, "-notext",
                  "-startdate", utc(-3600), "-enddate", utc(int(days) * 86400), "-subj", "/CN=" + common_name]
                 + signer)
        with open(out, encoding="ascii") as f:
            return f.read()


def ensure_ca(ca_dir, common_name, days=3650):
    """The CA's certificate (PEM) in ``ca_dir``, creating key and certificate when absent; (pem, created)."""
    error = name_error(common_name, "ca_common_name")
    if error:
        raise TlsError(error)
    key, cert = os.path.join(ca_dir, "ca.key"), os.path.join(ca_dir, "ca.crt")
    created = False
    if os.path.exists(key) != os.path.exists(cert):
        raise TlsError("%s holds only one of ca.key and ca.crt: restore the missing file from backup (a new CA "
                       "would make every certificate it signed worthless)" % ca_dir)
    if not os.path.exists(key):
        os.makedirs(ca_dir, mode=0o700, exist_ok=True)
        make_key(key)
        pem = _issue(key, None, make_csr(key, common_name), common_name,
                     ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign",
                      "subjectKeyIdentifier=hash"], days)
        with open(cert, "w", encoding="ascii") as f:
            f.write(pem)
        created = True
    with open(cert, encoding="ascii") as f:
        return f.read(), created


def _san_text(sans):
    return ",".join(("IP:" if _is_ip(s) else "DNS:") + s for s in sans)


def sign(ca_dir, csr_pem, common_name, sans, usage="server_client", days=825):
    """A certificate (PEM) for the request's key, with the caller's name, SANs and usage."""
    for error in (name_error(common_name), san_error(sans)):
        if error:
            raise TlsError(error)
    if usage not in USAGES:
        raise TlsError("usage: %r is not one of %s" % (usage, ", ".join(sorted(USAGES))))
    if not isinstance(csr_pem, str) or "BEGIN CERTIFICATE REQUEST" not in csr_pem:
        raise TlsError("csr: not a PEM certificate request")
    subject = _openssl(["req", "-noout", "-verify", "-subject", "-nameopt", "RFC2253"], stdin=csr_pem)
    if subject.strip() != "subject=CN=" + common_name:
        raise TlsError("csr: its subject is %r, not CN=%s: the request came from another host or name"
                       % (subject.strip(), common_name))
    extensions = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
                  "extendedKeyUsage=" + USAGES[usage], "authorityKeyIdentifier=keyid"]
    if sans:
        extensions.append("subjectAltName=" + _san_text(sans))
    return _issue(os.path.join(ca_dir, "ca.key"), os.path.join(ca_dir, "ca.crt"), csr_pem, common_name, extensions,
                  days)


def _sans_of(cert_pem):
    out = _openssl(["x509", "-noout", "-ext", "subjectAltName"], stdin=cert_pem)
    found = []
    for part in out.split("\n", 1)[1].split(",") if "\n" in out else []:
        part = part.strip()
        if part.startswith("IP Address:"):
            found.append(str(ipaddress.ip_address(part.split(":", 1)[1].strip())))
        elif part.startswith("DNS:"):
            found.append(part[4:])
    return sorted(found)


def certificate_problems(cert_pem, key_path, ca_pem, common_name, sans, renew_days=30):
    """Why this certificate must be issued again ([] when it is fine)."""
    if not cert_pem:
        return ["no certificate yet"]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        ca = os.path.join(tmp, "ca.crt")
        with open(ca, "w", encoding="ascii") as f:
            f.write(ca_pem or "")
        try:
            _openssl(["verify", "-CAfile", ca, "-purpose", "any"], stdin=cert_pem)
        except TlsError:
            problems.append("not signed by the current CA")
    try:
        if _public_key(["x509", "-noout", "-pubkey"], stdin=cert_pem) != _public_key(
                ["pkey", "-in", key_path, "-pubout"]):
            problems.append("issued for another key")
        subject = _openssl(["x509", "-noout", "-subject", "-nameopt", "RFC2253"], stdin=cert_pem).strip()
        if subject != "subject=CN=" + common_name:
            problems.append("its subject is %s, not CN=%s" % (subject[len("subject="):], common_name))
        want, have = sorted(str(ipaddress.ip_address(s)) if _is_ip(s) else s for s in sans), _sans_of(cert_pem)
        if have != want:
            problems.append("names %s, not %s" % (",".join(have) or "none", ",".join(want) or "none"))
        try:
            _openssl(["x509", "-noout", "-checkend", str(int(renew_days) * 86400)], stdin=cert_pem)
        except TlsError:
            problems.append("expires within %d days" % int(renew_days))
    except TlsError as exc:
        problems.append("unreadable (%s)" % exc)
    return problems
