#!/usr/bin/env bash
# Screenshot of the pipeline graph: `kedro viz build`, served on localhost, captured by headless Chromium.
#   bash docs/viz_screenshot.sh [pipeline]        (default: __default__)
# Needs Chromium (Debian: apt-get install chromium). Writes docs/pipeline_graph.png.
set -euo pipefail
cd "$(dirname "$0")/.."
pipeline="${1:-__default__}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$browser" ] || { echo "Chromium not found: apt-get install chromium" >&2; exit 1; }

KEDRO_DISABLE_TELEMETRY=true kedro viz build >/dev/null
# kedro-viz keeps its preferences in localStorage ("KedroViz"): set them before the app starts, so the
# picture has no feature tour over the graph, and no sidebar or minimap taking room from it.
prefs='{"showFeatureHints":false,"visible":{"sidebar":false,"miniMap":false},"textLabels":true}'
sed -i "s|<head>|<head><script>localStorage.setItem('KedroViz', '$prefs');</script>|" build/index.html
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory build >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 1
profile="$(mktemp -d)"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --window-size=1400,1000 --force-device-scale-factor=1.5 --virtual-time-budget=15000 \
  --screenshot="$PWD/docs/pipeline_graph.png" "http://127.0.0.1:$port/?pipeline_id=$pipeline" 2>/dev/null
rm -rf "$profile"
echo "wrote docs/pipeline_graph.png"
