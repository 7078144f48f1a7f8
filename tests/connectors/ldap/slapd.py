"""A throwaway OpenLDAP ``slapd`` for tests (Debian: ``apt-get install slapd ldap-utils``).

::

    with Slapd(base="dc=example,dc=com", ldif=text) as s:
        s.url, s.admin_dn, s.password

Everything lives in a temporary directory; the LDIF is loaded offline with
``slapadd``; slapd runs in the foreground (``-d 0``) on a free loopback port so
the test owns its PID. ``soft_size_limit`` caps searches that do not page
(except for the rootdn), which proves that a reader really pages. ``tls=True``
adds a self-signed certificate (``s.certificate``) for StartTLS tests and an
LDAPS listener (``s.ldaps_url``).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

SCHEMA_DIR = os.environ.get("ORGSYNC_LDAP_SCHEMA_DIR", "/etc/ldap/schema")
MODULE_DIR = os.environ.get("ORGSYNC_LDAP_MODULE_DIR", "/usr/lib/ldap")  # RHEL: /usr/lib64/openldap
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
AD_SCHEMA = Path(__file__).with_name("adlite.schema")

CONF = """\
include         {schema}/core.schema
include         {schema}/cosine.schema
include         {schema}/inetorgperson.schema
include         {schema}/nis.schema
{extra_includes}
pidfile         {dir}/slapd.pid
modulepath      {modules}
moduleload      back_mdb
{tls}
sizelimit       size.soft={soft} size.hard=unlimited size.prtotal=unlimited
database        mdb
maxsize         1073741824
suffix          "{base}"
rootdn          "{admin_dn}"
rootpw          {password}
directory       {dir}/data
dbnosync
index           objectClass eq
index           uid,cn,mail eq
access to * by * read
"""


def available() -> bool:
    """True when slapd and slapadd are installed."""
    return Path(SLAPD).exists() and Path(SLAPADD).exists()


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Slapd:
    """One slapd process with one mdb database (see the module docstring)."""

    def __init__(self, *, base: str = "dc=example,dc=com",
                 password: str = "secret",  # noqa: S107 - a throwaway test directory
                 ldif: str = "", extra_schema: Sequence[Path] = (), soft_size_limit: int = 500,
                 tls: bool = False) -> None:
        self.base = base
        self.password = password
        self.admin_dn = f"cn=admin,{base}"
        self.ldif = ldif
        self.extra_schema = extra_schema
        self.soft = soft_size_limit
        self.tls = tls
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.certificate: Path | None = None
        self.ldaps_port = free_port() if tls else None
        self.ldaps_url = f"ldaps://127.0.0.1:{self.ldaps_port}" if tls else None

    def __enter__(self) -> Slapd:
        self._tmp = tempfile.TemporaryDirectory(prefix="slapd-")
        d = Path(self._tmp.name)
        (d / "data").mkdir()
        tls = ""
        if self.tls:
            self.certificate = d / "cert.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-keyout", str(d / "key.pem"), "-out", str(self.certificate),
                 "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                check=True, capture_output=True)
            tls = (f"TLSCertificateFile {self.certificate}\n"
                   f"TLSCertificateKeyFile {d / 'key.pem'}")
        conf = d / "slapd.conf"
        conf.write_text(CONF.format(
            schema=SCHEMA_DIR, modules=MODULE_DIR, dir=d, base=self.base, admin_dn=self.admin_dn,
            password=self.password, soft=self.soft, tls=tls,
            extra_includes="\n".join(f"include         {p}" for p in self.extra_schema)))
        if self.ldif:
            (d / "data.ldif").write_text(self.ldif, encoding="utf-8")
            done = subprocess.run([SLAPADD, "-q", "-f", str(conf), "-l", str(d / "data.ldif")],
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"slapadd failed: {done.stderr}")
        listen = self.url + "/" + (f" {self.ldaps_url}/" if self.ldaps_url else "")
        self.proc = subprocess.Popen([SLAPD, "-d", "0", "-h", listen, "-f", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                assert self.proc.stderr is not None
                raise RuntimeError("slapd exited: " + self.proc.stderr.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.proc.kill()
                    raise RuntimeError("slapd did not start") from None
                time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self._tmp.cleanup()


def ldif_entry(dn: str, attributes: Iterable[tuple[str, str | bytes]]) -> str:
    """One LDIF record; non-ASCII text and bytes are base64 (``attr:: …``), as RFC 2849 says."""
    lines = [_line("dn", dn)]
    lines.extend(_line(name, value) for name, value in attributes)
    return "\n".join(lines) + "\n\n"


def _line(name: str, value: str | bytes) -> str:
    if isinstance(value, bytes) or not value.isascii() or value[:1] in (" ", ":", "<"):
        raw = value if isinstance(value, bytes) else value.encode("utf-8")
        return f"{name}:: {base64.b64encode(raw).decode('ascii')}"
    return f"{name}: {value}"
