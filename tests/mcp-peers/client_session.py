"""Drives `kubiya mcp server` with the Python MCP SDK client, as a desktop host would.

Usage: client_session.py KUBIYA_BINARY MODE   (MODE: auto = discover first, legacy = initialize)

Lists the tools, validates a workflow, executes one collecting its progress notifications, and
prints one JSON object with what it saw on stdout; the Rust test asserts on it.
"""

import asyncio
import json
import sys

from mcp import Client, StdioServerParameters

WORKFLOW = {
    "name": "greet",
    "steps": [
        {"name": "hello", "command": "echo hello", "output": "GREETING"},
        {"name": "shout", "command": "echo ${GREETING} world", "depends": ["hello"]},
    ],
}


def text_of(result):
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def main(binary: str, mode: str) -> None:
    params = StdioServerParameters(command=binary, args=["mcp", "server"])
    progress = []

    async def on_progress(value, total, message):
        progress.append({"progress": value, "message": message})

    async with Client(params, mode=mode) as client:
        listed = await client.list_tools()
        valid = await client.call_tool("validate_workflow", {"workflow": WORKFLOW})
        invalid = await client.call_tool(
            "validate_workflow", {"workflow": {"name": "bad", "steps": [{"name": "a", "depends": ["nope"]}]}}
        )
        executed = await client.call_tool(
            "execute_workflow", {"workflow": WORKFLOW}, read_timeout_seconds=60, progress_callback=on_progress
        )
        execution_id = json.loads(text_of(executed))["execution_id"]
        followed = await client.call_tool("get_execution", {"execution_id": execution_id})
        runners = await client.call_tool("list_runners", {})
        summary = {
            "protocol_version": client.protocol_version,
            "tools": sorted(tool.name for tool in listed.tools),
            "validate": {"is_error": valid.is_error, "body": json.loads(text_of(valid))},
            "invalid": {"is_error": invalid.is_error, "body": json.loads(text_of(invalid))},
            "execute": {"is_error": executed.is_error, "body": json.loads(text_of(executed))},
            "get_execution": json.loads(text_of(followed)),
            "runners": json.loads(text_of(runners)),
            "progress": progress,
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
