#!/bin/sh
# drift-check.sh: check a skyplan topology for drift, for cron and other schedulers.
#
#   drift-check.sh [TOPOLOGY]        (default: skyplan.toml, run from the topology's directory)
#
# Runs `skyplan plan --detailed-exitcode --json` and exits like it:
#   0  in sync: prints nothing unless DRIFT_CHECK_VERBOSE=1
#   2  drift (something changed outside skyplan) or pending changes: prints a summary of the
#      JSON (what drifted, what `skyplan apply` would do) and notifies
#   1  error (API unreachable, bad credentials, invalid topology, ...): prints skyplan's
#      message and notifies. An error is never reported as drift.
#
# Environment:
#   SKYPLAN           the skyplan binary (default: skyplan on PATH)
#   NOTIFY_CMD        a shell command that receives the message on stdin, e.g.
#                     'mail -s "skyplan drift" ops@example.com' or a curl to a chat webhook.
#                     Without it the message goes to stdout (cron mails it to MAILTO).
#   DRIFT_CHECK_JSON  jq or python3: the tool that summarises the JSON (default: jq if found)
#   API_KEY           (or the topology's api_key_env) the SkySQL API key, as for skyplan
#
# Example crontab line (every 15 minutes; cron mails any output):
#   */15 * * * * cd /srv/infra && ./drift-check.sh global-replication.toml
set -u

topology=${1:-skyplan.toml}
skyplan=${SKYPLAN:-skyplan}

out=$(mktemp) || exit 1
err=$(mktemp) || exit 1
trap 'rm -f "$out" "$err"' EXIT

"$skyplan" plan "$topology" --detailed-exitcode --json >"$out" 2>"$err"
code=$?

# Send a message (subject line first) to NOTIFY_CMD, or print it.
notify() {
    if [ -n "${NOTIFY_CMD:-}" ]; then
        printf '%s\n' "$1" | sh -c "$NOTIFY_CMD" || echo "drift-check: NOTIFY_CMD failed" >&2
    fi
    printf '%s\n' "$1"
}

# One line per drift item and per planned action, from the plan JSON on stdin.
summarize_jq() {
    jq -r '
      "Changed outside skyplan: \(.summary.drift) (informational ones excluded); planned actions: \(.actions | length)",
      (.drift[] | "  ~ \(.resource)  \(.kind)\(if .kind == "allowlist_entry_added" then " (informational)" else "" end): \(.detail)"),
      (if (.actions | length) > 0 then "`skyplan apply` would:" else empty end),
      (.actions[] | "  \(.address)  \(.change)\(if .wipes_data then " (WIPES DATA)" else "" end): \(.summary | gsub("  +"; " "))\(if .reason then " (because \(.reason))" else "" end)")
    '
}

summarize_python() {
    python3 -c '
import json, re, sys
p = json.load(sys.stdin)
print("Changed outside skyplan: %d (informational ones excluded); planned actions: %d"
      % (p["summary"]["drift"], len(p["actions"])))
for d in p["drift"]:
    info = " (informational)" if d["kind"] == "allowlist_entry_added" else ""
    print("  ~ %s  %s%s: %s" % (d["resource"], d["kind"], info, d["detail"]))
if p["actions"]:
    print("`skyplan apply` would:")
for a in p["actions"]:
    wipes = " (WIPES DATA)" if a["wipes_data"] else ""
    why = " (because %s)" % a["reason"] if a.get("reason") else ""
    print("  %s  %s%s: %s%s" % (a["address"], a["change"], wipes, re.sub("  +", " ", a["summary"]), why))
'
}

summarize() {
    tool=${DRIFT_CHECK_JSON:-}
    if [ -z "$tool" ]; then
        if command -v jq >/dev/null 2>&1; then tool=jq; else tool=python3; fi
    fi
    case $tool in
        jq) summarize_jq ;;
        python3) summarize_python ;;
        *) echo "drift-check: DRIFT_CHECK_JSON must be jq or python3, not $tool" >&2; return 1 ;;
    esac
}

case $code in
    0)
        if [ "${DRIFT_CHECK_VERBOSE:-0}" = 1 ]; then
            echo "skyplan: $topology is in sync"
        fi
        exit 0
        ;;
    2)
        if ! summary=$(summarize <"$out"); then
            notify "skyplan: $topology: drift or changes (exit 2), and the JSON could not be summarised
$(cat "$err")"
            exit 1
        fi
        notify "skyplan: $topology has drifted or has pending changes (exit 2)
$summary"
        exit 2
        ;;
    *)
        notify "skyplan: $topology could not be checked (exit $code): this is an error, not drift
$(cat "$err")" >&2
        exit 1
        ;;
esac
