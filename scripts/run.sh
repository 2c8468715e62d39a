#!/usr/bin/env bash
# Sets up and runs hanko.
#
#   scripts/run.sh [CONFIG]          (default: config/hanko.toml)
#
# 1. On first use, creates CONFIG from config/hanko.example.toml and stops, asking you to fill
#    in the Discord guild/channel ids and the responders (and to export the bot token).
# 2. Builds the release binary (the cargo cache lives outside the clone, see CARGO_TARGET_DIR).
# 3. Checks the config (`hanko check-config`): every problem is printed with its key and fix.
# 4. Starts the bot: `hanko run --config CONFIG`. AWS credentials come from the standard chain
#    (environment, profile, instance role); the Discord token from the variable or file named
#    in [discord]. SIGINT/SIGTERM stop it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG="${1:-config/hanko.toml}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hanko/target}"

if [ ! -f "$CONFIG" ]; then
    cp config/hanko.example.toml "$CONFIG"
    echo "Created $CONFIG from config/hanko.example.toml."
    echo "Edit it: [discord] guild_id and channel_id, [responders] approver roles or users,"
    echo "[aws] regions and [store] path; export the bot token (HANKO_DISCORD_TOKEN by default);"
    echo "then run scripts/run.sh $CONFIG again."
    exit 1
fi

cargo build --release --locked --bin hanko
HANKO="$CARGO_TARGET_DIR/release/hanko"
"$HANKO" check-config "$CONFIG"
exec "$HANKO" run --config "$CONFIG"
