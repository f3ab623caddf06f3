#!/usr/bin/env bash
# Separate networks are isolated, even with addresses in one subnet.
source "$(dirname "$0")/lib.sh"
start_switch
"$US" network create --name "$SW" red --subnet 198.18.21.0/24
"$US" network create --name "$SW" blue --subnet 198.18.21.0/24
run "r1$$" --network red
run "r2$$" --network red
run "b1$$" --network blue --ip 198.18.21.3/24
check "r1 reaches r2 on red" reaches "r1$$" 198.18.21.2
check "r1 does not reach b1 on blue" unreachable "r1$$" 198.18.21.3
check "b1 does not reach r2 on red" unreachable "b1$$" 198.18.21.2
echo PASS
