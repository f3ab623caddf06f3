#!/usr/bin/env bash
# A container on two networks talks to both, while the networks stay isolated.
source "$(dirname "$0")/lib.sh"
start_switch
"$US" network create --name "$SW" front --subnet 198.18.22.0/24
"$US" network create --name "$SW" back --subnet 198.18.23.0/24
run "web$$" --network front
run "db$$" --network back
run "app$$" --network front --network back
"$US" ps --name "$SW"
check "app reaches web on front" reaches "app$$" 198.18.22.1
check "app reaches db on back" reaches "app$$" 198.18.23.1
# Even told that back's subnet is on its own link, web cannot reach db.
ip -n "web$$" route add 198.18.23.0/24 dev eth0
check "web does not reach db across networks" unreachable "web$$" 198.18.23.1
echo PASS
