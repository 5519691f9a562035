"""SaaS APIs: payments, messaging, email, and chat webhooks."""

from __future__ import annotations

from keysafe.scan.rules.base import Rule, rule

RULES: tuple[Rule, ...] = (
    rule(
        "stripe-secret-key",
        "Stripe secret or restricted key",
        r"\b((?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,247})\b",
        ["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
        secret_group=1,
        min_entropy=3.5,
        anchored=True,
    ),
    rule(
        "stripe-webhook-secret",
        "Stripe webhook signing secret",
        r"\b(whsec_[0-9A-Za-z]{32,})\b",
        ["whsec_"],
        secret_group=1,
        min_entropy=3.5,
        anchored=True,
    ),
    rule(
        "slack-token",
        "Slack bot, user, app or configuration token",
        r"\b(xox[abposr]-(?:\d+-)+[0-9A-Za-z]{20,}|xapp-\d-[A-Z0-9]+-\d+-[0-9a-f]{32,}"
        r"|xoxe\.xox[bp]-\d-[A-Za-z0-9]{100,})",
        ["xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xapp-", "xoxe."],
        secret_group=1,
        anchored=True,
    ),
    rule(
        "slack-webhook-url",
        "Slack incoming webhook URL",
        r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/"
        r"T[0-9A-Z]{8,12}/[AB][0-9A-Z]{8,12}/[0-9A-Za-z]{23,25})",
        ["hooks.slack.com"],
        secret_group=1,
    ),
    rule(
        "discord-webhook-url",
        "Discord webhook URL",
        r"(https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{17,20}/"
        r"[0-9A-Za-z_-]{60,68})",
        ["discord.com/api/webhooks", "discordapp.com/api/webhooks"],
        secret_group=1,
    ),
    rule(
        "twilio-api-key",
        "Twilio API key SID",
        # No keyword: "sk" is everywhere; a literal-prefix regex over the text is cheaper.
        r"SK[0-9a-f]{32}\b",
        [],
        secret_group=1,
        min_entropy=3.2,
    ),
    rule(
        "twilio-auth-token",
        "Twilio auth token",
        r"(?i)twilio[\w.-]{0,20}(?:auth)?[_.-]?token[\"']?\s*(?:[:=]|=>)\s*[\"']?([0-9a-f]{32})\b",
        ["twilio"],
        secret_group=1,
        min_entropy=3.0,
        anchored=True,
    ),
    rule(
        "sendgrid-api-key",
        "SendGrid API key",
        # No keyword: "sg." is in every "msg."; the case-sensitive prefix is rare.
        r"SG\.[0-9A-Za-z_-]{22}\.[0-9A-Za-z_-]{43}(?![0-9A-Za-z_-])",
        [],
    ),
    rule(
        "mailgun-api-key",
        "Mailgun API key",
        r"\b(key-[0-9a-f]{32}|[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8})\b",
        ["key-", "mailgun"],
        secret_group=1,
        min_entropy=3.2,
    ),
    rule(
        "shopify-token",
        "Shopify access, custom app, partner or shared secret token",
        r"\b(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b",
        ["shpat_", "shpca_", "shppa_", "shpss_"],
        secret_group=1,
        min_entropy=3.0,
        anchored=True,
    ),
    rule(
        "telegram-bot-token",
        "Telegram bot token",
        r"(?<![0-9A-Za-z_-])(\d{8,10}:AA[0-9A-Za-z_-]{33})(?![0-9A-Za-z_-])",
        [":aa"],
        secret_group=1,
        min_entropy=3.5,
    ),
)
