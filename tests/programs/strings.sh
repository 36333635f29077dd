#!/bin/bash
# String and array workload for bash: indexed and associative arrays, loops,
# parameter expansion, printf -v, command substitution and pipes to sort.
# Output is deterministic (run with LC_ALL=C); it ends with cksum lines.
set -euo pipefail

state=12345
rnd() { # rnd N: sets REPLY to a deterministic number in [0, N)
    state=$(( (state * 1103515245 + 12345) & 0x7FFFFFFF ))
    REPLY=$(( state % $1 ))
}

# Indexed arrays: build, splice, reverse.
letters=({a..z})
words=()
for ((i = 0; i < 6000; i++)); do
    rnd 26; letter=${letters[REPLY]}; rnd 9
    printf -v word '%s%0*d' "$letter" $((REPLY + 1)) "$i"
    words+=("$word")
done
words=("${words[@]:100:3000}" "${words[@]:4000}" "${words[@]:0:100}")
reversed=()
for ((i = ${#words[@]} - 1; i >= 0; i--)); do reversed+=("${words[i]^^}"); done
echo "arrays: ${#words[@]} ${#reversed[@]} ${reversed[0]} ${reversed[-1]}"

# Associative arrays: counting, deleting, rebuilding.
declare -A count=()
for w in "${words[@]}"; do
    key=${w:0:2}
    count[$key]=$(( ${count[$key]:-0} + ${#w} ))
done
for key in "${!count[@]}"; do
    (( count[$key] % 3 == 0 )) && unset "count[$key]"
done
total=0
for key in "${!count[@]}"; do total=$(( total + count[$key] )); done
echo "assoc: ${#count[@]} keys, total $total"
echo "assoc top: $(for k in "${!count[@]}"; do echo "${count[$k]} $k"; done |
    sort -k1,1nr -k2 | head -n 5 | tr '\n' ' ')"

# Long strings: repeated concatenation and pattern substitution.
text=""
for ((i = 0; i < 3000; i++)); do text+="${words[i]}-"; done
for ((round = 0; round < 5; round++)); do
    text=${text//a/AE}
    text=${text//-x/+}
    text=${text,,}
done
echo "text: ${#text} $(printf '%s' "$text" | cksum)"

# Command substitution in a loop and a sort over everything.
sum=0
for ((i = 0; i < 300; i++)); do
    n=$(printf '%s\n' "${words[@]:i*10:10}" | wc -c)
    sum=$(( sum + n ))
done
echo "subst: $sum"
echo "sorted: $(printf '%s\n' "${words[@]%%[0-9]*}" "${reversed[@]%%[0-9]*}" | sort | uniq -c |
    sort -k1,1nr -k2 | head -n 3 | tr -s ' \n' ' ')"
echo "all: $(printf '%s\n' "${words[@]}" | sort -r | cksum)"
