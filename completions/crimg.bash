# bash completion for crimg: crimg itself answers (CRIMG_COMPLETE=bash crimg -- WORDS...)
# Splits $1 into the caller's `words` as the shell will: blanks outside quotes end a
# word, quotes and backslashes are removed, an unclosed quote runs to the end, and the
# last word is the one the cursor is in (empty after a blank).
_crimg_split() {
    local s=$1 w= q= c i
    local -i in=0
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
            in=1
            case $c in
                "'" | '"') q=$c ;;
                '\') w+=${s:i+1:1}; ((i += 1)) ;;
                *) w+=$c ;;
            esac
        fi
    done
    words+=("$w")
}
_crimg_complete() {
    local -a words
    _crimg_split "${COMP_LINE:0:COMP_POINT}"
    local cur=${words[${#words[@]}-1]}
    local keep=
    [[ $cur == *"$2" ]] && keep=${cur%"$2"}
    local reply
    reply=$(_CLAP_IFS=$'\013' _CLAP_COMPLETE_INDEX=$((${#words[@]} - 1)) \
        _CLAP_COMPLETE_COMP_TYPE="${COMP_TYPE:-9}" _CLAP_COMPLETE_SPACE=true \
        CRIMG_COMPLETE=bash crimg -- "${words[@]}" 2>/dev/null) || return 0
    local -a found=()
    IFS=$'\013' read -r -d '' -a found < <(printf '%s' "$reply")
    COMPREPLY=()
    local c
    for c in "${found[@]}"; do
        COMPREPLY+=("${c#"$keep"}")
    done
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} != *[/:=] ]]; then
        compopt +o nospace 2>/dev/null
    fi
    return 0
}
complete -o nospace -o bashdefault -F _crimg_complete crimg
