"""AI model APIs: OpenAI, Anthropic, Hugging Face, Groq, Replicate, Perplexity, xAI."""

from __future__ import annotations

from keysafe.scan.rules.base import Rule, rule

RULES: tuple[Rule, ...] = (
    rule(
        "openai-api-key",
        "OpenAI API key",
        # Every OpenAI key carries "T3BlbkFJ" (base64 of "OpenAI") in its middle.
        r"\b(sk-(?:proj-|svcacct-|admin-|None-)?[0-9A-Za-z_-]{16,200}T3BlbkFJ[0-9A-Za-z_-]{16,200})"
        r"(?![0-9A-Za-z_-])",
        ["t3blbkfj"],
        secret_group=1,
    ),
    rule(
        "anthropic-api-key",
        "Anthropic API key",
        r"\b(sk-ant-(?:api|admin)\d\d-[0-9A-Za-z_-]{80,120})(?![0-9A-Za-z_-])",
        ["sk-ant-"],
        secret_group=1,
        min_entropy=4.0,
        anchored=True,
    ),
    rule(
        "huggingface-token",
        "Hugging Face access token",
        r"\b(hf_[A-Za-z]{34})\b",
        ["hf_"],
        secret_group=1,
        min_entropy=4.0,
        anchored=True,
    ),
    rule(
        "groq-api-key",
        "Groq API key",
        r"\b(gsk_[0-9A-Za-z]{52})\b",
        ["gsk_"],
        secret_group=1,
        min_entropy=4.0,
        anchored=True,
    ),
    rule(
        "replicate-api-token",
        "Replicate API token",
        r"\b(r8_[0-9A-Za-z]{37})\b",
        ["r8_"],
        secret_group=1,
        min_entropy=4.0,
        anchored=True,
    ),
    rule(
        "perplexity-api-key",
        "Perplexity API key",
        r"\b(pplx-[0-9A-Za-z]{48})\b",
        ["pplx-"],
        secret_group=1,
        min_entropy=4.0,
        anchored=True,
    ),
    rule(
        "xai-api-key",
        "xAI API key",
        r"\b(xai-[0-9A-Za-z]{80})\b",
        ["xai-"],
        secret_group=1,
        min_entropy=4.0,
        anchored=True,
    ),
)
