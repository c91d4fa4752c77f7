"""Reading tokens, cost and errors from the agent CLIs' JSON output.

The samples are what the pinned CLIs printed against tests/agents/model_server.py (Claude Code
2.1.329, Codex 0.169.0, Gemini CLI 0.61.0; long fields trimmed), plus shapes from their docs and
source: Claude Code's result subtypes, Codex's exec_events.rs (thread.started, turn.completed,
turn.failed, error), Gemini CLI's JsonFormatter / StreamJsonFormatter.
"""

from __future__ import annotations

import pytest

from planrun.core.usage import USAGE_KINDS, RunningTotals, Usage, UsageResult, parse_usage

CLAUDE_JSON_SUCCESS = (
    '{"duration_api_ms":54,"stop_reason":"end_turn",'
    '"session_id":"c3e0f474-4146-4b3a-9b2f-be21d7168c9c","total_cost_usd":0.00216,'
    '"usage":{"input_tokens":240,"cache_creation_input_tokens":12,"cache_read_input_tokens":100,'
    '"output_tokens":60,"output_tokens_details":{"thinking_tokens":0},'
    '"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},'
    '"service_tier":"standard"},'
    '"modelUsage":{"claude-opus-5-5":{"inputTokens":240,"outputTokens":60,'
    '"cacheReadInputTokens":100,"cacheCreationInputTokens":12,"costUSD":0.00216}},'
    '"permission_denials":[],"terminal_reason":"completed","is_error":false,"num_turns":2,'
    '"subtype":"success","api_error_status":null,"result":"Done.","type":"result",'
    '"duration_ms":431,"uuid":"f82509ca-f567-4936-b720-cc7f81ffc1a8"}\n'
)

# A 400 from the API: Claude Code exits 1 and says so in a result with is_error but subtype success.
CLAUDE_JSON_API_ERROR = (
    '{"duration_api_ms":0,"stop_reason":"stop_sequence",'
    '"session_id":"6391b300-2099-4cef-bc10-bb66c45abfdc","total_cost_usd":0,'
    '"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
    '"output_tokens":0},"modelUsage":{},"permission_denials":[],'
    '"terminal_reason":"prompt_too_long","is_error":true,"num_turns":1,"subtype":"success",'
    '"api_error_status":400,"api_error_type":"invalid_request_error",'
    '"result":"Prompt is too long","type":"result","duration_ms":242}\n'
)

CLAUDE_JSON_MAX_TURNS = (
    '{"type":"result","subtype":"error_max_turns","is_error":true,"duration_ms":9120,'
    '"num_turns":3,"session_id":"0f7e…","total_cost_usd":0.0412,'
    '"usage":{"input_tokens":3000,"cache_creation_input_tokens":0,'
    '"cache_read_input_tokens":0,"output_tokens":420},"errors":[]}'
)

CLAUDE_STREAM_JSON = "\n".join(
    [
        '{"type":"system","subtype":"init","cwd":"/work/repo","session_id":"07250faf",'
        '"tools":["Bash","Edit","Read","Write"],"model":"claude-opus-5-5",'
        '"permissionMode":"bypassPermissions"}',
        '{"type":"assistant","message":{"id":"msg_000001","type":"message","role":"assistant",'
        '"model":"claude-opus-5-5","content":[{"type":"tool_use","id":"toolu_000002",'
        '"name":"Write","input":{"file_path":"/work/repo/hello.txt","content":"hi"}}],'
        '"stop_reason":null,"usage":{"input_tokens":120,"output_tokens":1}},'
        '"session_id":"07250faf"}',
        '{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_000002",'
        '"type":"tool_result","content":"File created successfully"}]},"session_id":"07250faf"}',
        '{"type":"assistant","message":{"id":"msg_000003","type":"message","role":"assistant",'
        '"model":"claude-opus-5-5","content":[{"type":"text","text":"Done."}]},'
        '"session_id":"07250faf"}',
        '{"type":"result","subtype":"success","is_error":false,"duration_ms":431,"num_turns":2,'
        '"result":"Done.","session_id":"07250faf","total_cost_usd":0.00216,'
        '"usage":{"input_tokens":240,"cache_creation_input_tokens":0,'
        '"cache_read_input_tokens":0,"output_tokens":60}}',
        "",
    ]
)

CODEX_SUCCESS = "\n".join(
    [
        '{"type":"thread.started","thread_id":"01a1fcd6-af73-70c3-82b9-645b8797ad89"}',
        '{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata'
        " for `mock-model` not found. Defaulting to fallback metadata; this can degrade"
        ' performance and cause issues."}}',
        '{"type":"turn.started"}',
        '{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":'
        '"/bin/bash -c \\"printf \'hi from codex\' > hello.txt\\"","aggregated_output":"",'
        '"exit_code":null,"status":"in_progress"}}',
        '{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":'
        '"/bin/bash -c \\"printf \'hi from codex\' > hello.txt\\"","aggregated_output":"",'
        '"exit_code":0,"status":"completed"}}',
        '{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"Done."}}',
        '{"type":"turn.completed","usage":{"input_tokens":240,"cached_input_tokens":100,'
        '"cache_write_input_tokens":0,"output_tokens":60,"reasoning_output_tokens":8}}',
        "",
    ]
)

CODEX_FAILURE = "\n".join(
    [
        '{"type":"thread.started","thread_id":"01a1fcda-3e61-7d72-923f-ad1b00d2f351"}',
        '{"type":"turn.started"}',
        '{"type":"error","message":"{\\"error\\": {\\"message\\": \\"The model mock-model does'
        ' not exist\\", \\"type\\": \\"invalid_request_error\\", \\"code\\": null}}"}',
        '{"type":"turn.failed","error":{"message":"{\\"error\\": {\\"message\\": \\"The model'
        ' mock-model does not exist\\", \\"type\\": \\"invalid_request_error\\",'
        ' \\"code\\": null}}"}}',
        "",
    ]
)

GEMINI_JSON_SUCCESS = """{
  "session_id": "508fadd6-6212-4bec-a671-5146fd270033",
  "response": "Done.",
  "stats": {
    "models": {
      "gemini-3.5-flash-lite": {
        "api": {"totalRequests": 1, "totalErrors": 0, "totalLatencyMs": 35, "errorsByType": {}},
        "tokens": {"input": 120, "prompt": 120, "candidates": 30, "total": 150, "cached": 0,
                   "thoughts": 0, "tool": 0},
        "roles": {"utility_router": {"totalRequests": 1}}
      },
      "gemini-3.8-flash": {
        "api": {"totalRequests": 2, "totalErrors": 0, "totalLatencyMs": 331, "errorsByType": {}},
        "tokens": {"input": 240, "prompt": 240, "candidates": 60, "total": 310, "cached": 0,
                   "thoughts": 10, "tool": 0},
        "roles": {"main": {"totalRequests": 2}}
      }
    },
    "tools": {"totalCalls": 1, "totalSuccess": 1, "totalFail": 0, "totalDurationMs": 57},
    "files": {"totalLinesAdded": 1, "totalLinesRemoved": 0}
  }
}
"""

GEMINI_JSON_AUTH_ERROR = """YOLO mode is enabled. All tool calls will be automatically approved.
{
  "session_id": "625eb255-43c1-4863-9ca1-82d0bd5396f1",
  "error": {
    "type": "Error",
    "message": "Invalid auth method selected.",
    "code": 41
  }
}
"""

GEMINI_STREAM_JSON = "\n".join(
    [
        '{"type":"init","timestamp":"2026-09-10T12:00:00.000Z","session_id":"a8e16a92",'
        '"model":"gemini-3.8-flash"}',
        '{"type":"message","timestamp":"2026-09-10T12:00:00.100Z","role":"user",'
        '"content":"write hello.txt"}',
        '{"type":"tool_use","timestamp":"2026-09-10T12:00:01.000Z","tool_name":"write_file",'
        '"tool_id":"write_file-1","parameters":{"file_path":"hello.txt","content":"hi"}}',
        '{"type":"tool_result","timestamp":"2026-09-10T12:00:01.100Z","tool_id":"write_file-1",'
        '"status":"success"}',
        '{"type":"message","timestamp":"2026-09-10T12:00:02.000Z","role":"assistant",'
        '"content":"Done.","delta":true}',
        '{"type":"result","timestamp":"2026-09-10T12:00:02.100Z","status":"success","stats":'
        '{"total_tokens":450,"input_tokens":360,"output_tokens":90,"cached":0,"input":240,'
        '"duration_ms":2100,"tool_calls":1}}',
        "",
    ]
)

GEMINI_STREAM_JSON_ERROR = (
    '{"type":"result","timestamp":"2026-09-10T12:00:00.000Z","status":"error",'
    '"error":{"type":"FatalAuthenticationError","message":"Invalid auth method selected."},'
    '"stats":{"total_tokens":0,"input_tokens":0,"output_tokens":0,"cached":0,"input":0,'
    '"duration_ms":0,"tool_calls":0}}\n'
)


def test_usage_kinds_are_the_documented_ones() -> None:
    assert set(USAGE_KINDS) == {"claude-json", "codex-json", "gemini-json", "none"}


def test_claude_json_success_counts_cache_tokens_as_input() -> None:
    result = parse_usage("claude-json", CLAUDE_JSON_SUCCESS)
    assert result == UsageResult(Usage(240 + 12 + 100, 60, 0.00216), None)
    assert result.usage is not None
    assert result.usage.total_tokens == 412


def test_claude_json_api_error_is_reported_with_its_status() -> None:
    result = parse_usage("claude-json", CLAUDE_JSON_API_ERROR)
    assert result.usage == Usage(0, 0, 0.0)
    assert result.error == "API error 400: Prompt is too long"


def test_claude_json_error_subtype_without_result_text() -> None:
    result = parse_usage("claude-json", CLAUDE_JSON_MAX_TURNS)
    assert result == UsageResult(Usage(3000, 420, 0.0412), "error_max_turns")


def test_claude_stream_json_reads_the_final_result_only() -> None:
    result = parse_usage("claude-json", CLAUDE_STREAM_JSON)
    assert result == UsageResult(Usage(240, 60, 0.00216), None)


def test_claude_output_in_noise_with_ansi_and_crlf() -> None:
    noisy = (
        "\x1b[33mwarning: something\x1b[0m\r\n"
        "not json { at all\r\n"
        "{broken json\r\n" + CLAUDE_JSON_SUCCESS.replace("\n", "\r\n") + "trailing text\n"
    )
    assert parse_usage("claude-json", noisy).usage == Usage(352, 60, 0.00216)


def test_claude_without_a_result_object() -> None:
    partial = CLAUDE_STREAM_JSON.rsplit('{"type":"result"', 1)[0]
    assert parse_usage("claude-json", partial) == UsageResult(
        None, "no Claude Code result object in the output"
    )
    assert parse_usage("claude-json", "") == UsageResult(
        None, "no Claude Code result object in the output"
    )


def test_codex_success_ignores_warning_items() -> None:
    assert parse_usage("codex-json", CODEX_SUCCESS) == UsageResult(Usage(240, 60, None), None)


def test_codex_turn_usage_is_the_threads_running_total() -> None:
    """Codex 0.169.0's turn.completed carries the thread's totals (a resumed thread's turn
    counted the earlier turns' requests too, against the scripted model): the last counts."""
    two = CODEX_SUCCESS + CODEX_SUCCESS.split("\n", 1)[1].replace("240", "360")
    result = parse_usage("codex-json", two)
    assert result.usage == Usage(360, 60, None)
    assert result.session == "01a1fcd6-af73-70c3-82b9-645b8797ad89"


# -- running totals across turns (--continue / resume) ----------------------------------------


def _claude_turn(session: str, cost: float, tokens: int = 240) -> str:
    return (
        CLAUDE_JSON_SUCCESS.replace("c3e0f474-4146-4b3a-9b2f-be21d7168c9c", session)
        .replace('"total_cost_usd":0.00216', f'"total_cost_usd":{cost}')
        .replace('"input_tokens":240', f'"input_tokens":{tokens}')
    )


def test_claude_cost_is_the_sessions_running_total_and_counts_once() -> None:
    """With --continue, total_cost_usd is the session's total so far (0.00216, then 0.00432
    for two equal turns, seen with Claude Code 2.1.329); usage is the turn's own."""
    totals = RunningTotals()
    first = totals.turn("claude-json", parse_usage("claude-json", _claude_turn("s1", 0.00216)))
    second = totals.turn("claude-json", parse_usage("claude-json", _claude_turn("s1", 0.00432)))
    assert first == Usage(352, 60, 0.00216)
    assert second is not None
    assert (second.input_tokens, second.output_tokens) == (352, 60)
    assert second.cost_usd == pytest.approx(0.00216)


def test_a_new_session_starts_its_own_total() -> None:
    totals = RunningTotals()
    totals.turn("claude-json", parse_usage("claude-json", _claude_turn("s1", 0.5)))
    other = totals.turn("claude-json", parse_usage("claude-json", _claude_turn("s2", 0.25)))
    assert other is not None
    assert other.cost_usd == pytest.approx(0.25)


def test_codex_tokens_of_a_resumed_thread_count_once() -> None:
    totals = RunningTotals()
    resumed = CODEX_SUCCESS.replace('"input_tokens":240', '"input_tokens":360').replace(
        '"output_tokens":60', '"output_tokens":90'
    )
    first = totals.turn("codex-json", parse_usage("codex-json", CODEX_SUCCESS))
    second = totals.turn("codex-json", parse_usage("codex-json", resumed))
    assert (first, second) == (Usage(240, 60, None), Usage(120, 30, None))


def test_gemini_stats_are_per_run_and_pass_through() -> None:
    """Gemini CLI 0.61.0's stats count the run's own requests, --resume or not."""
    totals = RunningTotals()
    result = parse_usage("gemini-json", GEMINI_JSON_SUCCESS)
    assert totals.turn("gemini-json", result) == result.usage
    assert totals.turn("gemini-json", result) == result.usage


def test_codex_failure_unwraps_the_api_error_once() -> None:
    result = parse_usage("codex-json", CODEX_FAILURE)
    assert result == UsageResult(None, "The model mock-model does not exist")


def test_codex_error_recovered_by_a_later_turn_is_not_an_error() -> None:
    output = '{"type":"error","message":"Reconnecting... 1/5"}\n' + CODEX_SUCCESS
    assert parse_usage("codex-json", output) == UsageResult(Usage(240, 60, None), None)


def test_codex_plain_message_error_after_usage() -> None:
    output = CODEX_SUCCESS + '{"type":"turn.failed","error":{"message":"stream disconnected"}}\n'
    assert parse_usage("codex-json", output) == UsageResult(
        Usage(240, 60, None), "stream disconnected"
    )


def test_codex_without_events() -> None:
    assert parse_usage("codex-json", "Reading additional input from stdin...\n") == UsageResult(
        None, "no Codex turn.completed event in the output"
    )


def test_gemini_json_sums_models_and_counts_thoughts_as_output() -> None:
    result = parse_usage("gemini-json", GEMINI_JSON_SUCCESS)
    assert result == UsageResult(Usage(360, 100, None), None)


def test_gemini_json_error_after_a_stderr_line() -> None:
    result = parse_usage("gemini-json", GEMINI_JSON_AUTH_ERROR)
    assert result == UsageResult(None, "Error: Invalid auth method selected.")


def test_gemini_stream_json() -> None:
    assert parse_usage("gemini-json", GEMINI_STREAM_JSON) == UsageResult(Usage(360, 90, None), None)


def test_gemini_stream_json_error() -> None:
    assert parse_usage("gemini-json", GEMINI_STREAM_JSON_ERROR) == UsageResult(
        Usage(0, 0, None), "FatalAuthenticationError: Invalid auth method selected."
    )


def test_gemini_without_a_result() -> None:
    assert parse_usage("gemini-json", "Loaded cached credentials.\n") == UsageResult(
        None, "no Gemini CLI result in the output"
    )


def test_none_reads_nothing() -> None:
    assert parse_usage("none", CLAUDE_JSON_SUCCESS) == UsageResult(None, None)


def test_unknown_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown usage parser 'claude'"):
        parse_usage("claude", "{}")


def test_parsers_survive_arbitrary_text() -> None:
    junk = '{"type": "result", "usage": [1, 2], "total_cost_usd": "x", "is_error": "yes"}\n{{{\n'
    for kind in USAGE_KINDS:
        result = parse_usage(kind, junk)
        assert isinstance(result, UsageResult)
    assert parse_usage("claude-json", junk).usage == Usage(0, 0, None)
