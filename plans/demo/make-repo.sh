#!/bin/sh
# Makes the demo's git repository, once, from the files next to this script.
# Usage: make-repo.sh DEST
set -eu
dest=$1
[ -d "$dest/.git" ] && exit 0
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dest"
cp -R "$here/shop/." "$dest/"
cd "$dest"
git init -q
git symbolic-ref HEAD refs/heads/main
git config user.name "planrun demo"
git config user.email "demo@planrun.invalid"
git add -A
git commit -q -m "The demo shop"
echo "demo repository ready: $dest"
