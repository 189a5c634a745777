#!/bin/sh
# One-shot init of the docker-compose demo (service demo-init).
# Mints an AES-256 key into the keys volume (kept across runs, so a restart does
# not invalidate anything) and a fresh capability for demo-subject.json (beside
# this script; compose mounts both under /deploy) into the sandbox volume, then
# hands both files to uid 65532, the non-root user of the extauthz and
# sandbox-client images. The sandbox never sees the key.
set -eu
umask 077

if [ ! -s /keys/keys ]; then
  /extauthz keygen > /keys/keys.tmp
  mv /keys/keys.tmp /keys/keys
fi
# The demo upstream is plain http on the compose host "echo", which issue must
# accept as a development host exactly as the server does (--dev-http-hosts).
/extauthz issue --key-file /keys/keys --dev-http-hosts echo --ttl 1h \
  < /deploy/demo-subject.json > /sandbox/capability.tmp
mv /sandbox/capability.tmp /sandbox/capability

chown 65532:65532 /keys/keys /sandbox/capability
chmod 0400 /keys/keys /sandbox/capability
echo "demo-init: key in /keys (not shared with the sandbox), capability in /sandbox"
