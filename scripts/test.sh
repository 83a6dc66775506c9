#!/usr/bin/env bash
# The README's test command. Sets up what it needs, snapshots the root network
# namespace, runs the suite, then runs the final check that the root namespace
# is unchanged. Writes the counts to .test-state/summary and prints them.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

mkdir -p .test-state
export TERN_TEST_PREFIX="${TERN_TEST_PREFIX:-tt$(head -c2 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
bash scripts/root-snapshot.sh > .test-state/root-before.txt

vitest=node_modules/vitest/vitest.mjs
node "$vitest" run --reporter=default --reporter=json --outputFile.json=.test-state/main.json "$@"
main_rc=$?
# The 802.1Q data path needs a kernel with 8021q: the VLAN tests run inside a VM (UML where it
# boots, QEMU elsewhere; scripts/vlan-vm.sh says which). A VM that cannot boot is a failure.
bash scripts/vlan-vm.sh 2>&1 | tee .test-state/vlan-vm.log
vlan_rc=${PIPESTATUS[0]}
grep -aE '^[0-9]+ passed, [0-9]+ failed' .test-state/vlan-vm.log | tail -1 > .test-state/vlan-vm.txt

node "$vitest" run --config vitest.final.config.mts --reporter=default --reporter=json --outputFile.json=.test-state/final.json
final_rc=$?

node scripts/summarize.mjs .test-state/main.json .test-state/vlan-vm.txt .test-state/final.json > .test-state/summary
cat .test-state/summary
read -r passed _ failed _ < <(tail -1 .test-state/summary | tr -d ',')
if [ "$main_rc" -ne 0 ] || [ "$vlan_rc" -ne 0 ] || [ "$final_rc" -ne 0 ] || [ "${failed:-1}" -ne 0 ] || [ "${passed:-0}" -eq 0 ]; then exit 1; fi
exit 0
