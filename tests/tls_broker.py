"""Test certificates and a broker whose only advertised listener requires TLS.

Tansu 0.6 does not serve TLS itself, so Debian's stunnel4 terminates TLS in front of it and the
broker advertises the stunnel port: after bootstrapping, every client connection (metadata,
produce, fetch, group coordination) goes through TLS. With `client_ca` set, stunnel also
requires a client certificate signed by that CA (mutual TLS).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from worker.kafka.embedded import EmbeddedBroker, free_port, stop_process_group, wait_until_listening


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its PEM certificate file and what it needs to sign others."""

    cert_path: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _certificate(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.CertificateBuilder:
    """A certificate for `key`, valid for a day from five minutes ago (clock skew)."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )


def make_authority(folder: Path, name: str) -> Authority:
    """A self-signed CA, valid for a day, written to `<folder>/<name>.pem`."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _certificate(name, _name(name), key, ca=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(path, cert, key)


def issue(authority: Authority, folder: Path, name: str, server: bool) -> tuple[Path, Path]:
    """A leaf certificate signed by `authority`: (cert path, key path).

    A server certificate names 127.0.0.1 and localhost, so hostname checks pass on loopback.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _certificate(name, authority.cert.subject, key, ca=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(authority.key, hashes.SHA256())
    cert_path = folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, _write_key(key, folder / f"{name}.key")


class TLSBroker:
    """`with TLSBroker(folder, authority) as broker:` Tansu behind stunnel; `broker.url` is TLS-only."""

    def __init__(self, folder: Path, authority: Authority, client_ca: Path | None = None) -> None:
        self.folder = folder
        self.authority = authority
        self.client_ca = client_ca
        self._stunnel: subprocess.Popen[bytes] | None = None
        self._take_ports()

    def _take_ports(self) -> None:
        """A TLS port and a broker port, never the same one (each is free only when asked)."""
        self.tls_port = free_port()
        self.broker = EmbeddedBroker(advertised_port=self.tls_port)
        while self.broker.port == self.tls_port:
            self.broker = EmbeddedBroker(advertised_port=self.tls_port)
        self.server_cert, self.server_key = issue(self.authority, self.folder, f"broker-{self.tls_port}", server=True)
        self.log_path = self.folder / f"stunnel-{self.tls_port}.log"

    @property
    def bootstrap(self) -> str:
        """`host:port` of the TLS listener."""
        return f"127.0.0.1:{self.tls_port}"

    @property
    def url(self) -> str:
        """The TLS listener in Faust's form."""
        return f"kafka://{self.bootstrap}"

    def start(self) -> TLSBroker:
        """Start the broker and stunnel; returns once stunnel answers a TLS handshake on its port.

        A port found free can be taken by another process before stunnel binds it, and then
        that process answers in its place: such a start is retried on new ports."""
        for attempt in range(3):
            if self._start_once():
                return self
            if attempt == 2:
                break
            self.stop()
            self._take_ports()
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"stunnel did not listen on {self.bootstrap}:\n{tail}")

    def _answers_tls(self) -> bool:
        """Whether our stunnel answers on the TLS port: the handshake shows this broker's own
        certificate (another listener on the port, even another stunnel, fails the check)."""
        context = ssl.create_default_context(cafile=str(self.authority.cert_path))
        context.check_hostname = False
        ours = ssl.PEM_cert_to_DER_cert(self.server_cert.read_text())
        try:
            with socket.create_connection(("127.0.0.1", self.tls_port), timeout=5) as raw:
                with context.wrap_socket(raw) as tls:
                    tls.do_handshake()
                    return tls.getpeercert(binary_form=True) == ours
        except ssl.SSLCertVerificationError:
            return False  # a certificate our authority did not sign: not our stunnel
        except ssl.SSLError:
            # the server's certificate was verified before a listener that requires a client
            # certificate refused this connection, which carries none
            return self.client_ca is not None
        except OSError:
            return False

    def _start_once(self) -> bool:
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        assert binary, "stunnel is missing: apt-get install -y stunnel4"  # CI installs it; never skip
        self.broker.start()
        lines = [
            "foreground = yes",
            "pid =",
            f"output = {self.log_path}",
            "debug = 4",
            "[kafka]",
            f"accept = 127.0.0.1:{self.tls_port}",
            f"connect = 127.0.0.1:{self.broker.port}",
            f"cert = {self.server_cert}",
            f"key = {self.server_key}",
        ]
        if self.client_ca:
            lines += [f"CAfile = {self.client_ca}", "verifyChain = yes", "requireCert = yes"]
        config = self.folder / f"stunnel-{self.tls_port}.conf"
        config.write_text("\n".join(lines) + "\n")
        self._stunnel = subprocess.Popen(
            [binary, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return (
            wait_until_listening(self._stunnel, self.tls_port, timeout=20)
            and self._stunnel.poll() is None
            and self._answers_tls()
        )

    def stop(self) -> None:
        """Stop stunnel and the broker."""
        stunnel, self._stunnel = self._stunnel, None
        stop_process_group(stunnel, grace_seconds=5)
        self.broker.stop()

    def log_tail(self, limit: int = 3000) -> str:
        """The end of stunnel's log."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-limit:]
        return ""

    def __enter__(self) -> TLSBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
