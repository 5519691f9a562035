"""Source forges and package registries: GitHub, GitLab, npm, PyPI."""

from __future__ import annotations

from keysafe.scan.checksums import github_token_valid
from keysafe.scan.rules.base import Rule, rule

RULES: tuple[Rule, ...] = (
    rule(
        "github-token",
        "GitHub token (personal, OAuth, app, refresh)",
        # No word boundaries: the checksum alone tells a token, even glued to another.
        r"(gh[pousr]_[0-9A-Za-z]{36})",
        ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        secret_group=1,
        # The checksum tells a real token from look-alike text.
        validator=github_token_valid,
        anchored=True,
    ),
    rule(
        "github-fine-grained-token",
        "GitHub fine-grained personal access token",
        r"\b(github_pat_[0-9A-Za-z]{22}_[0-9A-Za-z]{59})\b",
        ["github_pat_"],
        secret_group=1,
        min_entropy=4.0,
        anchored=True,
    ),
    rule(
        "gitlab-token",
        "GitLab token (personal, deploy, runner, pipeline trigger, OAuth)",
        r"\b((?:glpat|gldt|glrt|glptt|gloas|glcbt|glsoat|glffct|glagent|glimt)"
        r"-[0-9A-Za-z_-]{20,64})(?![0-9A-Za-z_-])",
        [
            "glpat-",
            "gldt-",
            "glrt-",
            "glptt-",
            "gloas-",
            "glcbt-",
            "glsoat-",
            "glffct-",
            "glagent-",
            "glimt-",
        ],
        secret_group=1,
        min_entropy=3.5,
        anchored=True,
    ),
    rule(
        "gitlab-runner-registration-token",
        "GitLab runner registration token",
        r"\b(GR1348941[0-9A-Za-z_-]{20})(?![0-9A-Za-z_-])",
        ["gr1348941"],
        secret_group=1,
        anchored=True,
    ),
    rule(
        "npm-token",
        "npm access token",
        r"\b(npm_[0-9A-Za-z]{36})\b",
        ["npm_"],
        secret_group=1,
        min_entropy=4.0,
        anchored=True,
    ),
    rule(
        "pypi-token",
        "PyPI / TestPyPI upload token",
        r"\b(pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[0-9A-Za-z_-]{50,})",
        ["pypi-age"],
        secret_group=1,
        anchored=True,
    ),
)
