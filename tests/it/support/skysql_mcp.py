"""Drive SkySQL's own MCP server (skysqlinc/skysql-mcp) against skyplan's emulator.

Usage: skysql_mcp.py SERVER_PY ENDPOINT CA_CERT, with the API key in SKYSQL_API_KEY (as the
server itself reads it). The server's base URL is the only change to its code (it is
hard-coded to https://api.skysql.com); its SQL trusts the emulator's CA through SSL_CERT_FILE.
Its tools run as an MCP client calls them, over stdio: launch_serverless_db, list_services,
get_db_credentials, execute_sql, delete_db. Prints ALL TOOLS OK at the end.
"""
import asyncio
import json
import os
import re
import sys
import time
import urllib.request

server_py, endpoint, ca = sys.argv[1:4]
api_key = os.environ["SKYSQL_API_KEY"]
src = open(server_py).read()
assert 'base_url="https://api.skysql.com"' in src, "the server's base URL moved"
patched = os.path.join(os.path.dirname(os.path.abspath(server_py)), "server_local.py")
open(patched, "w").write(src.replace('base_url="https://api.skysql.com"', f'base_url="{endpoint}"'))

from fastmcp import Client
from fastmcp.client.transports import PythonStdioTransport

def text(result):
    return "\n".join(c.text for c in result.content if hasattr(c, "text"))

def api(method, path, body=None):
    req = urllib.request.Request(endpoint + path, method=method,
        headers={"X-API-Key": api_key, "Content-Type": "application/json"},
        data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

async def main():
    env = dict(os.environ, SKYSQL_API_KEY=api_key, SSL_CERT_FILE=ca)
    transport = PythonStdioTransport(script_path=patched, env=env, cwd=os.path.dirname(patched))
    async with Client(transport) as c:
        out = text(await c.call_tool("launch_serverless_db", {"name": "mcp-client-test", "region": "eastus", "provider": "azure"}))
        print("launch_serverless_db:", out)
        m = re.search(r"with ID: (\S+)", out)
        assert m, out
        sid = m.group(1)
        deadline = time.time() + 120
        while True:
            listed = text(await c.call_tool("list_services", {}))
            if re.search(rf"ID: {re.escape(sid)}\nStatus: ready", listed):
                break
            assert time.time() < deadline, listed
            await asyncio.sleep(0.5)
        print("list_services: ready")
        # The one step outside the MCP server: its update_ip_allowlist asks
        # checkip.amazonaws.com for a public IP, which a local database never sees.
        api("POST", f"/provisioning/v1/services/{sid}/security/allowlist", {"ip_address": "127.0.0.1/32"})
        creds = text(await c.call_tool("get_db_credentials", {"service_id": sid}))
        assert "Username: " in creds and "Password: " in creds, creds
        print("get_db_credentials: ok")
        rows = text(await c.call_tool("execute_sql", {"service_id": sid, "sql_query": "SELECT 40 + 2 AS answer"}))
        print("execute_sql:", rows.replace("\n", " / "))
        assert "| answer |" in rows and "| 42 |" in rows, rows
        out = text(await c.call_tool("delete_db", {"service_id": sid}))
        print("delete_db:", out)
        assert "uccess" in out, out
    print("ALL TOOLS OK")

asyncio.run(main())
