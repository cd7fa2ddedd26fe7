#!/usr/bin/env bash
# Provide WordNet 3.0 to NLTK inside the virtual environment, without NLTK's downloader (which
# needs the internet): Debian's wordnet-base + wordnet-sense-index hold the WordNet 3.0 database;
# NLTK's reader also needs the `lexnames` file, which Debian omits: it is the fixed list of
# lexicographer files documented in lexnames(5WN), written here. METEOR depends on it.
# Usage: tools/install_wordnet.sh VENV   (idempotent; builds VENV/nltk_data/corpora/wordnet)
set -euo pipefail
venv=${1:-.venv}
target="$venv/nltk_data/corpora/wordnet"
[ -f "$target/lexnames" ] && [ -f "$target/data.noun" ] && exit 0
source=/usr/share/wordnet
if [ ! -f "$source/data.noun" ] || [ ! -f "$source/index.sense" ]; then
    "$(dirname "$0")/apt_install.sh" wordnet-base wordnet-sense-index || {
        echo "WordNet is missing (or, with internet, python -m nltk.downloader wordnet); re-run this script" >&2
        exit 1
    }
fi
tmp="$target.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
find "$source" -maxdepth 1 -type f -exec cp {} "$tmp"/ \;
i=0
for entry in adj.all:3 adj.pert:3 adv.all:4 noun.Tops:1 noun.act:1 noun.animal:1 noun.artifact:1 \
    noun.attribute:1 noun.body:1 noun.cognition:1 noun.communication:1 noun.event:1 noun.feeling:1 \
    noun.food:1 noun.group:1 noun.location:1 noun.motive:1 noun.object:1 noun.person:1 noun.phenomenon:1 \
    noun.plant:1 noun.possession:1 noun.process:1 noun.quantity:1 noun.relation:1 noun.shape:1 \
    noun.state:1 noun.substance:1 noun.time:1 verb.body:2 verb.change:2 verb.cognition:2 \
    verb.communication:2 verb.competition:2 verb.consumption:2 verb.contact:2 verb.creation:2 \
    verb.emotion:2 verb.motion:2 verb.perception:2 verb.possession:2 verb.social:2 verb.stative:2 \
    verb.weather:2 adj.ppl:3; do
    printf '%02d\t%s\t%s\n' "$i" "${entry%%:*}" "${entry##*:}" >> "$tmp/lexnames"
    i=$((i + 1))
done
rm -rf "$target"
mv "$tmp" "$target"
echo "WordNet 3.0 for NLTK in $target"
