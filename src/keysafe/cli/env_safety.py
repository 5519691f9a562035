"""Which variables secrets may set in ``keysafe run`` and ``keysafe export``.

Whoever can write a secret into a folder chooses the names of the variables a program
using that folder receives. Some names are not data but instructions: they make a
loader, shell or interpreter run code of the writer's choosing when the program starts
(``LD_PRELOAD``, ``BASH_ENV``, ``PYTHONSTARTUP``, ``NODE_OPTIONS``...), or they point the
program at another keysafe server or identity (``KEYSAFE_ADDR``, ``KEYSAFE_TOKEN``).
Write access to a folder must not become code execution wherever the folder is used, so
such names are refused unless the person running the command allows each one by name
(``--allow-env NAME``).

The list is a denylist of names with a documented effect on how programs start, grouped
below with the reason for each group. Names are compared upper-cased: refusing ``path``
as well as ``PATH`` costs nothing, and some programs and platforms fold case.

Deliberately NOT refused: proxies (``HTTPS_PROXY``) and CA bundles (``SSL_CERT_FILE``,
``REQUESTS_CA_BUNDLE``), which change where a program connects rather than what code it
runs, and are often legitimately stored as secrets (a proxy URL with credentials); package
manager settings (``PIP_INDEX_URL``, ``NPM_CONFIG_*``), which matter only when the program
installs packages; and ``TERM``/``LANG``-style presentation settings.

The caller's own environment is inherited as it is, except for keysafe's credentials:
the token keysafe used (``KEYSAFE_TOKEN``) reaches the program only with ``--pass-token``,
and the unseal key never does (see :func:`inherited_env`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from keysafe.errors import InvalidInput

# (why, exact names, name prefixes). The reason is shown in the refusal.
_GROUPS: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...] = (
    (
        # glibc/musl ld.so and macOS dyld read these before main(): LD_PRELOAD and
        # DYLD_INSERT_LIBRARIES load any shared object. The exact names are glibc's own
        # UNSECURE_ENVVARS (what it strips for setuid programs): iconv modules
        # (GCONV_PATH), tunables (GLIBC_TUNABLES, CVE-2023-4911), resolver and locale
        # files. OpenSSL loads engines and providers named by its configuration.
        "the dynamic loader or C library reads it when any program starts",
        frozenset(
            {
                "GCONV_PATH",
                "GETCONF_DIR",
                "GLIBC_TUNABLES",
                "HOSTALIASES",
                "LOCALDOMAIN",
                "LOCPATH",
                "NIS_PATH",
                "NLSPATH",
                "RESOLV_HOST_CONF",
                "RES_OPTIONS",
                "TMPDIR",
                "TZDIR",
                "OPENSSL_CONF",
                "OPENSSL_ENGINES",
                "OPENSSL_MODULES",
            }
        ),
        ("LD_", "DYLD_", "MALLOC_"),
    ),
    (
        # Non-interactive bash sources $BASH_ENV, sh/dash/ksh source $ENV; exported
        # functions (BASH_FUNC_x%%) replace commands; options, PS4 (expanded under
        # xtrace), prompts and PROMPT_COMMAND run code; IFS and CDPATH change what
        # scripts do; PATH (used to find COMMAND itself) chooses which program runs.
        "a shell reads it at start-up or uses it to find and run commands",
        frozenset(
            {
                "BASH_ENV",
                "ENV",
                "SHELLOPTS",
                "BASHOPTS",
                "BASH_XTRACEFD",
                "BASH_LOADABLES_PATH",
                "PS0",
                "PS1",
                "PS2",
                "PS4",
                "PROMPT_COMMAND",
                "IFS",
                "CDPATH",
                "FPATH",
                "PATH",
                "GLOBIGNORE",
                "INPUTRC",
            }
        ),
        ("BASH_FUNC_",),
    ),
    (
        # Start-up files are read from these directories (.bashrc, .zshenv, .gitconfig,
        # .npmrc, ~/.config/...): moving them moves what runs.
        "programs read their start-up and configuration files from it",
        frozenset({"HOME", "ZDOTDIR", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS"}),
        (),
    ),
    (
        # Interpreters: module search paths, start-up scripts and extra command-line
        # options. Every variable CPython reads starts with PYTHON, and the list grows
        # with each release, so the whole prefix is refused.
        "an interpreter reads it to load code or options at start-up",
        frozenset(
            {
                "PERL5LIB",
                "PERL5OPT",
                "PERLLIB",
                "PERL5DB",
                "RUBYOPT",
                "RUBYLIB",
                "NODE_OPTIONS",
                "NODE_PATH",
                "NODE_REPL_EXTERNAL_MODULE",
                "JAVA_TOOL_OPTIONS",
                "_JAVA_OPTIONS",
                "JDK_JAVA_OPTIONS",
                "JAVA_HOME",
                "CLASSPATH",
                "DOTNET_STARTUP_HOOKS",
                "CORECLR_ENABLE_PROFILING",
                "CORECLR_PROFILER",
                "CORECLR_PROFILER_PATH",
                "GOFLAGS",
                "LUA_INIT",
                "LUA_PATH",
                "LUA_CPATH",
                "PHPRC",
                "PHP_INI_SCAN_DIR",
                "R_PROFILE",
                "R_PROFILE_USER",
                "ERL_FLAGS",
                "ERL_AFLAGS",
                "ERL_ZFLAGS",
            }
        ),
        ("PYTHON",),
    ),
    (
        # git runs these programs (ssh, helpers, pagers, hooks via config), and
        # GIT_CONFIG_* inject configuration such as core.sshCommand or core.fsmonitor.
        # Other GIT_* names (GIT_TOKEN...) are ordinary data and stay allowed.
        "git runs the program it names or obeys the configuration it carries",
        frozenset(
            {
                "GIT_SSH",
                "GIT_SSH_COMMAND",
                "GIT_EXEC_PATH",
                "GIT_ASKPASS",
                "GIT_PAGER",
                "GIT_EDITOR",
                "GIT_SEQUENCE_EDITOR",
                "GIT_EXTERNAL_DIFF",
                "GIT_PROXY_COMMAND",
                "GIT_TEMPLATE_DIR",
                "GIT_DIR",
                "GIT_WORK_TREE",
            }
        ),
        ("GIT_CONFIG",),
    ),
    (
        # Programs start whatever these name: an editor for a commit message, a pager
        # for output, less's input filter, a password prompt, a browser, a shell.
        "programs run the command it names",
        frozenset(
            {
                "SHELL",
                "EDITOR",
                "VISUAL",
                "PAGER",
                "MANPAGER",
                "BROWSER",
                "LESSOPEN",
                "LESSCLOSE",
                "SSH_ASKPASS",
                "SUDO_ASKPASS",
            }
        ),
        (),
    ),
    (
        # keysafe's own settings: a secret naming KEYSAFE_ADDR or KEYSAFE_CACERT sends the
        # program's SDK to a server of the writer's choosing; KEYSAFE_TOKEN swaps its
        # identity; KEYSAFE_HOME swaps its profile.
        "it configures keysafe itself (server, credential or profile of the program's SDK)",
        frozenset(),
        ("KEYSAFE_",),
    ),
)

# keysafe's credentials in the caller's environment: never inherited by the program
# (KEYSAFE_TOKEN comes back with --pass-token, as the token keysafe itself used).
CALLER_CREDENTIALS = (
    "KEYSAFE_TOKEN",
    "KEYSAFE_UNSEAL_KEY",
    "KEYSAFE_PKCS11_PIN",
    "KEYSAFE_TRANSIT_TOKEN",
)


def refusal_reason(name: str) -> str | None:
    """Why a secret may not set the variable ``name``, or None when it may."""
    upper = name.upper()
    for reason, names, prefixes in _GROUPS:
        if upper in names or upper.startswith(prefixes):
            return reason
    return None


def check_names(origins: Mapping[str, str], allowed: Iterable[str]) -> None:
    """Refuse the first variable of ``origins`` (name -> secret path) that a secret may
    not set, unless its exact name is in ``allowed``. Raises InvalidInput (exit 2)."""
    allow = set(allowed)
    for name, path in origins.items():
        if name in allow:
            continue
        reason = refusal_reason(name)
        if reason is not None:
            raise InvalidInput(
                f"secret {path} would set {name}, which is refused because {reason}; "
                f"pass --allow-env {name} if that is intended"
            )


def inherited_env(
    environ: Mapping[str, str], passed: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The caller's environment for the program, without keysafe's credentials, updated
    with ``passed`` (what ``--pass-token`` hands over: token, address, CA)."""
    env = {k: v for k, v in environ.items() if k.upper() not in CALLER_CREDENTIALS}
    env.update(passed or {})
    return env
