"""Regenerate the labelled scan corpus: ``python tests/data/scan_corpus/make_corpus.py``.

Templates below are real-looking files. ``{S:kind}`` plants a fake credential of a real
format (a true positive, recorded in labels.json by file and line); ``{N:kind}`` plants
a hard look-alike that must not be reported. Every value is generated from a fixed seed
and is not a real credential.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "unit" / "scan"))

from scan_fakes import Fakes  # noqa: E402

TEMPLATES = HERE / "templates"


def values(f: Fakes) -> dict[str, object]:
    """Makers for each placeholder kind."""
    hex64 = lambda: f.pick("0123456789abcdef", 64)  # noqa: E731
    return {
        # true positives
        "aws_id": f.aws_id,
        "aws_secret": f.aws_secret,
        "gcp": f.gcp_key,
        "gcp_oauth": f.gcp_oauth,
        "azure_storage": f.azure_storage,
        "azure_ad": f.azure_ad,
        "ghp": lambda: f.github("ghp"),
        "ghs": lambda: f.github("ghs"),
        "gho": lambda: f.github("gho"),
        "github_pat": f.github_pat,
        "gitlab": f.gitlab,
        "npm": f.npm,
        "pypi": f.pypi,
        "stripe": f.stripe,
        "stripe_test": lambda: f.stripe("test"),
        "whsec": f.stripe_webhook,
        "slack": f.slack_bot,
        "slack_hook": f.slack_webhook,
        "discord_hook": f.discord_webhook,
        "twilio_key": f.twilio_key,
        "hex32": f.hex32,
        "sendgrid": f.sendgrid,
        "mailgun": f.mailgun,
        "openai": f.openai,
        "anthropic": f.anthropic,
        "hf": f.huggingface,
        "groq": f.groq,
        "replicate": f.replicate,
        "jwt": f.jwt,
        "password": f.password,
        "keysafe": lambda: f.keysafe("tok"),
        "keysafe_root": lambda: f.keysafe("root"),
        "hex64": hex64,
        "token40": lambda: f.pick("abcdefghijkmnopqrstuvwxyzABCDEFGH0123456789", 40),
        "pem_rsa": lambda: f.pem("RSA "),
        "pem_ec": lambda: f.pem("EC ", lines=3),
        "pem_openssh": lambda: f.pem("OPENSSH ", lines=6),
        "pem_pkcs8": lambda: f.pem(""),
        "pem_encrypted": lambda: f.pem("ENCRYPTED "),
        "pgp": f.pgp,
        "pem_rsa_enc": lambda: f.pem("RSA ", encrypted_headers=True),
        # look-alikes
        "bad_ghp": lambda: f.github("ghp", valid=False),
        "bad_keysafe": lambda: f.keysafe("tok", valid=False),
        "uuid": lambda: "-".join(f.pick("0123456789abcdef", n) for n in (8, 4, 4, 4, 12)),
        "sha1": lambda: f.pick("0123456789abcdef", 40),
        "sha256": hex64,
        "b64blob": lambda: f.pick(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 60
        ),
        "bad_jwt": lambda: (
            "eyJ"
            + f.pick("abcdefghijkl", 20)
            + ".eyJ"
            + f.pick("abcdefgh", 20)
            + "."
            + f.pick("abcdefgh", 20)
        ),
    }


def build() -> list[dict[str, object]]:
    """Write every rendered template under files/ and return the labels."""
    fakes = Fakes(seed=2024)
    makers = values(fakes)
    labels: list[dict[str, object]] = []
    out_root = HERE / "files"
    for template in sorted(TEMPLATES.rglob("*")):
        if not template.is_file():
            continue
        rel = template.relative_to(TEMPLATES).as_posix().removesuffix(".tmpl")
        text = template.read_text(encoding="utf-8")
        rendered_lines: list[str] = []
        next_line = 1
        for line in text.splitlines():
            kinds = re.findall(r"\{([SN]):(\w+)\}", line)
            rendered = re.sub(r"\{[SN]:(\w+)\}", lambda m: str(makers[m.group(1)]()), line)
            start = next_line
            next_line += rendered.count("\n") + 1
            rendered_lines.append(rendered)
            for kind, name in kinds:
                if kind == "S":
                    labels.append({"file": rel, "line": start, "kind": name})
        target = out_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(rendered_lines) + "\n", encoding="utf-8")
    (HERE / "labels.json").write_text(json.dumps({"secrets": labels}, indent=1) + "\n")
    return labels


if __name__ == "__main__":
    print(f"{len(build())} labelled secrets")
