# bash completion for BIN: BIN itself answers (VAR=bash BIN -- WORDS...)
# Splits $1 as the shell will run it, into the caller's `words`: blanks outside quotes end
# a word, quotes and backslashes are removed, an unclosed quote runs to the end, and the
# last word is the one the cursor is in (empty after a blank). Also sets the caller's
# `open` (the quote that word ends inside, if any) and `raw` (that word as typed). Byte by
# byte (LC_ALL=C): quotes and blanks are ASCII, and indexing a byte string stays cheap.
_NAME_split() {
    local LC_ALL=C s=$1 w= q= c
    local -i i in=0 start=0
    words=()
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        if [[ $q == "'" ]]; then
            if [[ $c == "'" ]]; then q=; else w+=$c; fi
        elif [[ $q == '"' ]]; then
            if [[ $c == '"' ]]; then
                q=
            elif [[ $c == '\' && ${s:i+1:1} == [\"\\\$\`] ]]; then
                w+=${s:i+1:1}
                ((i += 1))
            else
                w+=$c
            fi
        elif [[ $c == [[:blank:]] ]]; then
            ((in)) && words+=("$w")
            w= in=0
        else
            ((in)) || start=i
            in=1
            case $c in
                "'" | '"') q=$c ;;
                '\') w+=${s:i+1:1}; ((i += 1)) ;;
                *) w+=$c ;;
            esac
        fi
    done
    words+=("$w")
    open=$q raw=
    if ((in)); then raw=${s:start}; fi
    return 0
}
_NAME_complete() {
    local -a words
    local open raw
    _NAME_split "${COMP_LINE:0:COMP_POINT}"
    local cur=${words[${#words[@]}-1]}
    # What precedes bash's word ($2) in the current one. Inside an open quote, bash's word
    # is the unquoted text after the quote and bash closes the quote itself; otherwise it
    # is the text as typed, so each reply is quoted for the shell (printf %q).
    local keep= rawkeep=
    [[ $cur == *"$2" ]] && keep=${cur%"$2"}
    [[ $raw == *"$2" ]] && rawkeep=${raw%"$2"}
    local reply
    reply=$(_CLAP_IFS=$'\013' _CLAP_COMPLETE_INDEX=$((${#words[@]} - 1)) \
        _CLAP_COMPLETE_COMP_TYPE="${COMP_TYPE:-9}" _CLAP_COMPLETE_SPACE=true \
        VAR=bash COMPLETER -- "${words[@]}" 2>/dev/null) || return 0
    local -a found=()
    IFS=$'\013' read -r -d '' -a found < <(printf '%s' "$reply") || true
    COMPREPLY=()
    local c quoted
    for c in "${found[@]}"; do
        if [[ -n $open ]]; then
            COMPREPLY+=("${c#"$keep"}")
            continue
        fi
        printf -v quoted %q "$c"
        if [[ $quoted == "$rawkeep"* ]]; then
            COMPREPLY+=("${quoted#"$rawkeep"}")
        else
            printf -v quoted %q "${c#"$keep"}"
            COMPREPLY+=("$quoted")
        fi
    done
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} != *[/:=] ]]; then
        compopt +o nospace 2>/dev/null
    fi
    return 0
}
complete -o nospace -o bashdefault -F _NAME_complete BIN
