"""A TLS scanner (sslyze) against Traefik, as a client on the internet would see it.

Policy: Mozilla's "intermediate" configuration (ssl-config.mozilla.org), which
traefik/dynamic/middlewares.yml sets: TLS 1.2 and 1.3 only, forward-secret AEAD
suites only, no known TLS vulnerability; plus HSTS for a year and a complete
chain (leaf + intermediate) that verifies against the ACME CA's root.
"""

import warnings
from typing import Any

import pytest
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)
from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument
from sslyze.plugins.scan_commands import ScanCommand
from sslyze.scanner.models import (
    ScanCommandsExtraArguments,
    ServerScanRequest,
    ServerScanResult,
    ServerScanStatusEnum,
)
from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum
from sslyze.scanner.scanner import Scanner
from sslyze.server_setting import ServerNetworkLocation

from tests.stack.conftest import DOMAIN, Stack, record_figures

PROTOCOLS = {
    "SSL 2.0": "ssl_2_0_cipher_suites",
    "SSL 3.0": "ssl_3_0_cipher_suites",
    "TLS 1.0": "tls_1_0_cipher_suites",
    "TLS 1.1": "tls_1_1_cipher_suites",
    "TLS 1.2": "tls_1_2_cipher_suites",
    "TLS 1.3": "tls_1_3_cipher_suites",
}
ONE_YEAR = 365 * 24 * 3600


@pytest.fixture(scope="module")
def scan(configured_stack: Stack) -> ServerScanResult:
    assert configured_stack.root_ca is not None
    request = ServerScanRequest(
        # Traefik's port on this machine, with the domain as SNI and Host.
        server_location=ServerNetworkLocation(hostname=DOMAIN, port=443, ip_address="127.0.0.1"),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER | {ScanCommand.HTTP_HEADERS},
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=configured_stack.root_ca)
        ),
    )
    scanner = Scanner()
    with warnings.catch_warnings():
        # sslyze's bundled trust stores hold a root with a non-positive serial.
        warnings.simplefilter("ignore")
        scanner.queue_scans([request])
        (result,) = scanner.get_results()
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    record_figures(
        "TLS scan (sslyze) of Traefik",
        {name: accepted_suites(result, name) for name in PROTOCOLS},
    )
    return result


def attempt(result: ServerScanResult, field: str) -> Any:
    assert result.scan_result is not None
    scan_command = getattr(result.scan_result, field)
    assert scan_command.status == ScanCommandAttemptStatusEnum.COMPLETED, scan_command.error_trace
    return scan_command.result


def accepted_suites(result: ServerScanResult, protocol: str) -> list[str]:
    suites = attempt(result, PROTOCOLS[protocol]).accepted_cipher_suites
    return [suite.cipher_suite.name for suite in suites]


def test_only_tls_1_2_and_1_3_are_accepted(scan: ServerScanResult) -> None:
    accepted = {name for name in PROTOCOLS if accepted_suites(scan, name)}
    assert accepted == {"TLS 1.2", "TLS 1.3"}


def test_tls_1_2_offers_only_forward_secret_aead_suites(scan: ServerScanResult) -> None:
    suites = accepted_suites(scan, "TLS 1.2")
    assert suites
    for suite in suites:
        assert suite.startswith("TLS_ECDHE_"), suite  # forward secret
        assert "_GCM_" in suite or "_CHACHA20_POLY1305" in suite, suite  # AEAD: no CBC, RC4, 3DES
        assert not any(weak in suite for weak in ("NULL", "EXPORT", "anon", "RC4", "3DES")), suite


def test_configuration_meets_mozilla_intermediate(scan: ServerScanResult) -> None:
    profile = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
    try:
        check_server_against_tls_configuration(scan, profile)
    except ServerNotCompliantWithTlsConfiguration as exc:
        issues = dict(exc.issues)
        # Pebble (the test ACME CA) issues 5-year certificates; Let's Encrypt's last
        # 90 days. The lifespan is the CA's choice, not this stack's configuration.
        issues.pop("maximum_certificate_lifespan", None)
        assert not issues, issues


def test_hsts_is_sent_for_a_year_with_subdomains(scan: ServerScanResult) -> None:
    hsts = attempt(scan, "http_headers").strict_transport_security_header
    assert hsts is not None, "no Strict-Transport-Security header"
    assert hsts.max_age is not None
    assert hsts.max_age >= ONE_YEAR
    assert hsts.include_subdomains


def test_chain_is_complete_and_verifies_against_the_acme_root(
    scan: ServerScanResult, configured_stack: Stack
) -> None:
    assert configured_stack.root_ca is not None
    (deployment,) = attempt(scan, "certificate_info").certificate_deployments
    received = deployment.received_certificate_chain
    assert len(received) == 2, "the leaf and its intermediate"
    assert deployment.received_chain_has_valid_order
    assert not deployment.received_chain_contains_anchor_certificate
    (supplied,) = [
        result
        for result in deployment.path_validation_results
        if result.trust_store.path.resolve() == configured_stack.root_ca.resolve()
    ]
    assert supplied.was_validation_successful, supplied.openssl_error_string
    assert supplied.verified_certificate_chain is not None
    assert len(supplied.verified_certificate_chain) == 3, "leaf, intermediate, root"
    assert not deployment.verified_chain_has_sha1_signature
