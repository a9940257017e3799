# bash completion for crimg: crimg itself answers (CRIMG_COMPLETE=bash crimg -- WORDS...)
_crimg_complete() {
    local line=${COMP_LINE:0:COMP_POINT}
    local -a words
    local IFS=$' \t\n'
    read -r -a words <<< "$line"
    if [[ -z $line || $line == *[[:blank:]] ]]; then
        words+=("")
    fi
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
