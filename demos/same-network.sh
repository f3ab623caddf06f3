#!/usr/bin/env bash
# Containers on one network talk to each other.
source "$(dirname "$0")/lib.sh"
start_switch
"$US" network create --name "$SW" app --subnet 198.18.20.0/24
run "a$$" --network app
run "b$$" --network app
"$US" ps --name "$SW"
check "a reaches b on network app" reaches "a$$" 198.18.20.2
check "b reaches a on network app" reaches "b$$" 198.18.20.1
echo PASS
