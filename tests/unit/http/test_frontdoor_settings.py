"""FrontDoorSettings from the real config files, and policy.ini -> EASProvisionDoc names."""

from __future__ import annotations

from pathlib import Path

import attrs

from opush.config.loader import load
from opush.runtime import DEFAULT_POLICY, FrontDoorSettings, policy_from_section

CONF = Path(__file__).resolve().parents[3] / "conf"


def test_sample_configuration() -> None:
    config = load(CONF, obm_conf=None)
    settings = FrontDoorSettings.from_config(config)
    assert settings.activesync_url.endswith("/Microsoft-Server-ActiveSync")
    assert settings.activesync_url.startswith(("https://", "http://"))
    assert settings.allow_unknown_pda is config.sync_perms.allow_unknown_pda
    assert settings.max_waiting_per_device == config.opush.device_queue_max
    assert settings.auth_cache_seconds == config.opush.auth_cache_ttl
    assert set(settings.policy) == set(DEFAULT_POLICY)


def test_policy_ini_names_map_to_provision_doc_elements() -> None:
    config = load(CONF, obm_conf=None)
    section = attrs.evolve(
        config.policy,
        alpha_numeric_device_password_required=True,
        allow_wi_fi=False,
        allow_popimap_email=False,
        allow_ir_da=False,
        min_device_password_length=9,
        device_encryption_enabled=True,
    )
    policy = policy_from_section(section)
    assert policy["AlphanumericDevicePasswordRequired"] is True
    assert policy["AllowWiFi"] is False and policy["AllowPOPIMAPEmail"] is False
    assert policy["AllowIrDA"] is False and policy["MinDevicePasswordLength"] == 9
    assert policy["RequireStorageCardEncryption"] is True  # Java's deviceEncryptionEnabled


def test_blacklist_and_external_url_forms() -> None:
    assert FrontDoorSettings(external_url="https://a.example/").activesync_url == (
        "https://a.example/Microsoft-Server-ActiveSync"
    )
    assert FrontDoorSettings(external_url="a.example").activesync_url == (
        "https://a.example/Microsoft-Server-ActiveSync"
    )
