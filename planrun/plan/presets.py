"""Built-in provider presets: how to run each agent CLI unattended (SPEC §2 "providers").

Each preset is a raw provider definition in the plan-file vocabulary; the plan model validates it
and a plan's ``providers.<name>`` entry overrides it key by key (``preset: claude``).

How a session's argv is put together from these keys (the contract the presets are written for):

- ``argv = command + yolo_flag (when the task is autonomous) + [prompt] (prompt_via: argv)``.
  So ``command`` never ends with an option that takes the prompt as its value: a CLI whose
  prompt is an option value (aider ``--message``, copilot ``-p``) reads it from stdin instead.
- ``prompt_via: argv`` and every other mode except ``stdin`` need stdin at end-of-file
  (``/dev/null``): Codex ``exec`` and Gemini CLI read a piped stdin and append it to the prompt,
  so an open pipe makes them wait for ever.
- ``prompt_command`` holds ``"{{ prompt }}"`` as one element; yolo flags, when added, go after it
  (every preset's placeholder is a positional or the value of the option just before it, so an
  appended flag is still parsed as a flag).
- ``env`` is what the CLI needs to run without a person; ``secrets`` names the variables that
  hold its API keys (granted per plan, redacted from logs).

Every flag below was checked against the ``--help`` output of the version in
``PINNED_VERSIONS`` (tests/test_presets_help.py does it again in CI), and every preset except
kiro was run end to end against a scripted local model (tests/test_real_agents.py; aider only
with PLANRUN_AGENTS_FULL=1, as its install is slow; details in docs/providers.md). Kiro CLI is
not published on npm or PyPI (it installs with a shell script from kiro.dev), so its flags come
from its documentation only: see ``UNCHECKABLE``.
"""

from __future__ import annotations

PROMPT = "{{ prompt }}"

_SUCCESS: dict[str, object] = {"exit_codes": [0], "pattern": None}
_FAILURE: dict[str, object] = {"pattern": None}

PRESETS: dict[str, dict[str, object]] = {
    # -- shell ------------------------------------------------------------------------------
    # A plain command: the task's `run` argv is the whole command line; nothing to prompt, no
    # permissions to skip, no usage to read.
    "shell": {
        "command": [],
        "prompt_via": "argv",
        "success": dict(_SUCCESS),
        "failure": dict(_FAILURE),
        "usage": "none",
        "env": {},
        "secrets": [],
    },
    # -- claude: Claude Code, npm @anthropic-ai/claude-code 2.1.329 --------------------------
    # `claude --help` (2.1.329):
    #   -p, --print                     print the response and exit; skips the workspace trust
    #                                   dialog ("Print response and exit (useful for pipes)")
    #   --output-format json            one result object: usage, total_cost_usd, is_error
    #                                   ("only works with --print"; also text, stream-json)
    #   -c, --continue                  continue the most recent conversation in this directory
    #   --dangerously-skip-permissions  "Bypass all permission checks"
    #   [prompt]                        positional prompt
    # Unattended: as root Claude Code refuses --dangerously-skip-permissions ("cannot be used
    # with root/sudo privileges") unless IS_SANDBOX=1 (seen on 2.1.329). DISABLE_AUTOUPDATER and
    # CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC (Claude Code settings docs, "Environment
    # variables") stop the update check and telemetry: with them a run sends nothing but model
    # requests (checked through a recording proxy). Base URL: ANTHROPIC_BASE_URL.
    "claude": {
        "command": ["claude", "-p", "--output-format", "json"],
        "prompt_via": "argv",
        "prompt_command": ["claude", "-p", "--continue", "--output-format", "json", PROMPT],
        "yolo_flag": "--dangerously-skip-permissions",
        "success": dict(_SUCCESS),
        "failure": dict(_FAILURE),
        # Interactive (pty/tmux) permission questions ("Do you want to proceed?", "Do you want
        # to allow ..." are strings in the 2.1.329 binary; the edit/create wording is built at
        # run time).
        "input_pattern": r"(?i)do you want to (proceed|make this edit|create|allow)",
        "answers": [],
        "usage": "claude-json",
        "env": {
            "IS_SANDBOX": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        },
        "secrets": ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"],
    },
    # -- codex: Codex CLI, npm @openai/codex 0.169.0 ------------------------------------------
    # `codex exec --help` (0.169.0): "Run Codex non-interactively"
    #   --json                                      "Print events to stdout as JSONL"
    #   --skip-git-repo-check                       "Allow running Codex outside a Git
    #                                               repository" (projects may be plain folders)
    #   --dangerously-bypass-approvals-and-sandbox  "Skip all confirmation prompts and execute
    #                                               commands without sandboxing"
    #   [PROMPT]                                    positional; "-" or no prompt reads stdin
    # `codex exec resume --help`: resume [SESSION_ID] [PROMPT], --last = the most recent session
    # (filtered by the working directory, i.e. the task's worktree).
    # exec never asks for approval (approval policy "never"). Base URL: a model provider in
    # $CODEX_HOME/config.toml (`model_providers.<id>.base_url`, `wire_api = "responses"`), or
    # OPENAI_BASE_URL for the built-in provider. Unattended runs should set
    # `check_for_update_on_startup = false`, `[analytics] enabled = false` and, where the network
    # matters, `[features] plugins = false, remote_plugin = false, apps = false` (else it
    # contacts github.com and chatgpt.com at start-up): see docs/providers.md.
    "codex": {
        "command": ["codex", "exec", "--json", "--skip-git-repo-check"],
        "prompt_via": "argv",
        "prompt_command": [
            "codex",
            "exec",
            "resume",
            "--last",
            "--json",
            "--skip-git-repo-check",
            PROMPT,
        ],
        "yolo_flag": "--dangerously-bypass-approvals-and-sandbox",
        "success": dict(_SUCCESS),
        "failure": dict(_FAILURE),
        "input_pattern": None,
        "answers": [],
        "usage": "codex-json",
        "env": {},
        "secrets": ["CODEX_API_KEY", "OPENAI_API_KEY"],
    },
    # -- gemini: Gemini CLI, npm @google/gemini-cli 0.61.0 ------------------------------------
    # `gemini --help` (0.61.0):
    #   -o, --output-format json  choices text, json, stream-json; json = one object with
    #                             response, stats.models.*.tokens, error
    #   --skip-trust              "Trust the current workspace for this session"; without it a
    #                             headless run in a new folder exits 55 ("not running in a
    #                             trusted directory"; or GEMINI_CLI_TRUST_WORKSPACE=true)
    #   -y, --yolo                "Automatically accept all actions"
    #   -r, --resume latest       resume the most recent session
    #   [query..]                 positional prompt: with stdin not a terminal the run is
    #                             headless (checked), so no -p is needed (-p takes the prompt as
    #                             its value, which an appended yolo flag would break)
    # Base URL: GOOGLE_GEMINI_BASE_URL. In 0.61.0 setting it alone selects the "gateway" auth
    # type, which headless mode rejects ("Invalid auth method selected.", exit 41): settings.json
    # must also say security.auth.selectedType = "gemini-api-key" (see docs/providers.md).
    "gemini": {
        "command": ["gemini", "--output-format", "json", "--skip-trust"],
        "prompt_via": "argv",
        "prompt_command": [
            "gemini",
            "--output-format",
            "json",
            "--skip-trust",
            "--resume",
            "latest",
            PROMPT,
        ],
        "yolo_flag": "--yolo",
        "success": dict(_SUCCESS),
        "failure": dict(_FAILURE),
        # The interactive confirmations in the 0.61.0 bundle: "Allow execution of ...",
        # "Apply this change?"
        "input_pattern": r"(?i)allow execution|apply this change\?",
        "answers": [],
        "usage": "gemini-json",
        "env": {},
        "secrets": ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
    },
    # -- aider: aider, PyPI aider-chat 0.86.2 ---------------------------------------------------
    # `aider --help` (0.86.2):
    #   --message-file MESSAGE_FILE  "Specify a file containing the message to send the LLM,
    #                                process reply, then exit"; /dev/stdin makes the prompt come
    #                                from stdin (--message would need the prompt as its value)
    #   --message COMMAND            used by prompt_command
    #   --yes-always                 "Always say yes to every confirmation"
    #   --restore-chat-history       continue from .aider.chat.history.md (no session ids)
    #   --no-pretty, --no-fancy-input, --no-check-update, --no-show-release-notes,
    #   --analytics-disable, --no-detect-urls: plain output, no update check, no analytics, no
    #   URL questions; --no-gitignore: do not add .aider* to .gitignore in every worktree;
    #   --no-auto-commits: planrun commits the worktree itself (and aider would spend a model
    #   call per commit message).
    # Base URL: OPENAI_API_BASE (--openai-api-base) and the other providers' litellm variables.
    # aider fetches litellm's model price list from raw.githubusercontent.com at start-up; with
    # no network that costs a few seconds and a warning, nothing more.
    "aider": {
        "command": [
            "aider",
            "--no-pretty",
            "--no-fancy-input",
            "--no-check-update",
            "--no-show-release-notes",
            "--analytics-disable",
            "--no-detect-urls",
            "--no-gitignore",
            "--no-auto-commits",
            "--message-file",
            "/dev/stdin",
        ],
        "prompt_via": "stdin",
        "prompt_command": [
            "aider",
            "--no-pretty",
            "--no-fancy-input",
            "--no-check-update",
            "--no-show-release-notes",
            "--analytics-disable",
            "--no-detect-urls",
            "--no-gitignore",
            "--no-auto-commits",
            "--restore-chat-history",
            "--message",
            PROMPT,
        ],
        "yolo_flag": "--yes-always",
        "success": dict(_SUCCESS),
        "failure": dict(_FAILURE),
        # aider's confirmations: "Create new file? (Y)es/(N)o [Yes]:"
        "input_pattern": r"\(Y\)es/\(N\)o",
        "answers": [],
        "usage": "none",
        "env": {},
        "secrets": [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
            "OPENROUTER_API_KEY",
            "DEEPSEEK_API_KEY",
        ],
    },
    # -- kiro: Kiro CLI (not on npm or PyPI: installed by `curl -fsSL https://cli.kiro.dev/install
    # | bash`; flags from kiro.dev/docs/cli/headless and /docs/cli/reference/cli-commands, CLI
    # 3.x, not checked against a binary) -----------------------------------------------------
    #   chat --no-interactive  headless run; prompt positional (or piped stdin)
    #   --trust-all-tools      approve every tool for the session ("no user to approve")
    #   --resume               resume the last conversation in this directory
    # Headless mode authenticates only with KIRO_API_KEY (Pro plans and up). No JSON output.
    "kiro": {
        "command": ["kiro-cli", "chat", "--no-interactive"],
        "prompt_via": "argv",
        "prompt_command": ["kiro-cli", "chat", "--no-interactive", "--resume", PROMPT],
        "yolo_flag": "--trust-all-tools",
        "success": dict(_SUCCESS),
        "failure": dict(_FAILURE),
        "input_pattern": r"Allow this action\? \[y/n/t\]",
        "answers": [],
        "usage": "none",
        "env": {},
        "secrets": ["KIRO_API_KEY"],
    },
    # -- copilot: GitHub Copilot CLI, npm @github/copilot 1.0.102 ------------------------------
    # `copilot --help` (1.0.102):
    #   (piped stdin)       the prompt; runs non-interactively and exits like -p (checked; -p
    #                       takes the prompt as its value)
    #   --no-auto-update    "Disable downloading CLI updates automatically"
    #   --no-color          plain output
    #   --no-ask-user       "Disable the ask_user tool (agent works autonomously without
    #                       asking questions)"
    #   --yolo              "Enable all permissions (equivalent to --allow-all-tools
    #                       --allow-all-paths --allow-all-urls)"; --allow-all-tools is
    #                       "required for non-interactive mode"
    #   --continue          "Resume the most recent session"; -p, --prompt <text>
    # Auth: COPILOT_GITHUB_TOKEN / GH_TOKEN / GITHUB_TOKEN, or a BYOK provider
    # (`copilot help providers`: COPILOT_PROVIDER_BASE_URL, COPILOT_PROVIDER_TYPE
    # openai|azure|anthropic, COPILOT_PROVIDER_API_KEY, COPILOT_MODEL; COPILOT_OFFLINE=true skips
    # all other network access).
    "copilot": {
        "command": ["copilot", "--no-auto-update", "--no-color", "--no-ask-user"],
        "prompt_via": "stdin",
        "prompt_command": [
            "copilot",
            "--no-auto-update",
            "--no-color",
            "--no-ask-user",
            "--continue",
            "-p",
            PROMPT,
        ],
        "yolo_flag": "--yolo",
        "success": dict(_SUCCESS),
        "failure": dict(_FAILURE),
        # --no-ask-user and a piped prompt leave nothing to answer; the interactive permission
        # question's wording is not visible in the packaged binary, so no pattern is guessed.
        "input_pattern": None,
        "answers": [],
        "usage": "none",
        "env": {},
        "secrets": [
            "COPILOT_GITHUB_TOKEN",
            "GH_TOKEN",
            "GITHUB_TOKEN",
            "COPILOT_PROVIDER_API_KEY",
        ],
    },
    # -- opencode: opencode, npm opencode-ai 1.18.33 ---------------------------------------------
    # `opencode run --help` (1.18.33): "run opencode with a message"
    #   [message..]   positional prompt
    #   --auto        "auto-approve permissions that are not explicitly denied (dangerous!)"
    #   -c, --continue  "continue the last session"
    # OPENCODE_DISABLE_AUTOUPDATE stops the update check. Providers and base URLs come from
    # opencode.json or OPENCODE_CONFIG_CONTENT (`provider.<id>.options.baseURL`).
    "opencode": {
        "command": ["opencode", "run"],
        "prompt_via": "argv",
        "prompt_command": ["opencode", "run", "--continue", PROMPT],
        "yolo_flag": "--auto",
        "success": dict(_SUCCESS),
        "failure": dict(_FAILURE),
        "input_pattern": None,
        "answers": [],
        "usage": "none",
        "env": {"OPENCODE_DISABLE_AUTOUPDATE": "1"},
        "secrets": ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"],
    },
}

# preset -> (registry, package, exact version): what the presets were checked against.
PINNED_VERSIONS: dict[str, tuple[str, str, str]] = {
    "claude": ("npm", "@anthropic-ai/claude-code", "2.1.329"),
    "codex": ("npm", "@openai/codex", "0.169.0"),
    "gemini": ("npm", "@google/gemini-cli", "0.61.0"),
    "aider": ("pypi", "aider-chat", "0.86.2"),
    "opencode": ("npm", "opencode-ai", "1.18.33"),
    "copilot": ("npm", "@github/copilot", "1.0.102"),
}

# Presets whose CLI cannot be installed from a registry, so no test can run its --help.
UNCHECKABLE: dict[str, str] = {
    "kiro": (
        "Kiro CLI is published on neither npm nor PyPI (`npm view kiro-cli`, `@kiro/cli` and "
        "`kiro`: 404); it installs with a shell script from kiro.dev, so its flags come from "
        "the kiro.dev CLI documentation only"
    ),
}
