# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_crimg_global_optspecs
    string join \n r/runtime-endpoint= i/image-endpoint= a/address= n/namespace= c/config= timeout= o/output= q/quiet progress= v/verbose h/help V/version
end

function __fish_crimg_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_crimg_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_crimg_using_subcommand
    set -l cmd (__fish_crimg_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c crimg -n "__fish_crimg_needs_command" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_needs_command" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_needs_command" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_needs_command" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_needs_command" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_needs_command" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_needs_command" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_needs_command" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_needs_command" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_needs_command" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_needs_command" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "list" -d 'List images with their tags, size, pins, users and protections'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "ls" -d 'List images with their tags, size, pins, users and protections'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "pin" -d 'Pin images so that no garbage collection or prune removes them'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "unpin" -d 'Remove the pins of images'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "prune" -d 'Remove every image that nothing uses and nothing protects, saying why for each'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "import" -d 'Import image archives (OCI or docker save, any compression) into containerd'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "export" -d 'Write images to one archive that ctr import and docker load both accept'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "inspect" -d 'What archives hold and whether they are intact, read as import reads them (no runtime)'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "check" -d 'Whether images are complete in the content store and unpacked, and what an export would fetch'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c crimg -n "__fish_crimg_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c crimg -n "__fish_crimg_using_subcommand list" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand list" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand list" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand list" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand list" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand list" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand list" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand list" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand list" -l pinned -d 'Only pinned images'
complete -c crimg -n "__fish_crimg_using_subcommand list" -l unpinned -d 'Only images nobody pinned'
complete -c crimg -n "__fish_crimg_using_subcommand list" -l in-use -d 'Only images a container or pod sandbox uses'
complete -c crimg -n "__fish_crimg_using_subcommand list" -l unused -d 'Only images no container or pod sandbox uses'
complete -c crimg -n "__fish_crimg_using_subcommand list" -l protected -d 'Only images a prune would keep'
complete -c crimg -n "__fish_crimg_using_subcommand list" -l unprotected -d 'Only images a prune would remove'
complete -c crimg -n "__fish_crimg_using_subcommand list" -l dangling -d 'Only images no tag names (digest references or none at all)'
complete -c crimg -n "__fish_crimg_using_subcommand list" -l no-trunc -d 'Print every cell in full, even when the table is wider than the terminal'
complete -c crimg -n "__fish_crimg_using_subcommand list" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand list" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand list" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l pinned -d 'Only pinned images'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l unpinned -d 'Only images nobody pinned'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l in-use -d 'Only images a container or pod sandbox uses'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l unused -d 'Only images no container or pod sandbox uses'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l protected -d 'Only images a prune would keep'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l unprotected -d 'Only images a prune would remove'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l dangling -d 'Only images no tag names (digest references or none at all)'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -l no-trunc -d 'Print every cell in full, even when the table is wider than the terminal'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand ls" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand pin" -l from-file -d 'Also the images named in FILE, one per line (# comments), or `-` for stdin' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand pin" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand pin" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand pin" -l dry-run -d 'Show what would change, change nothing'
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand pin" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -l from-file -d 'Also the images named in FILE, one per line (# comments), or `-` for stdin' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -l dry-run -d 'Show what would change, change nothing'
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand unpin" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l why -d 'Print the decision and every reason for the images REF names (a reference, ID prefix or glob), remove nothing' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l exclude-file -d 'A file of exclusion patterns (one per line, # comments) or Eraser\'s JSON form (repeatable)' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l exclude-dir -d 'Directory whose *.conf files are exclusion files [default: /etc/crimg/exclude.d, which may be absent; a directory named here must exist]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l exclude -d 'Keep images matching this pattern: a glob on the normalised reference or a sha256: prefix (repeatable)' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l older-than -d 'Keep images whose containerd record is younger than this (24h, 7d)' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l keep-last -d 'Per repository, keep the N newest images' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l parallel -d 'Concurrent removals' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l target-usage -l low-usage -d 'Remove least recently used images only until the image filesystem is at or below PERCENT of its size: the low mark of the kubelet\'s image GC' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l high-usage -d 'Prune only when the image filesystem is above PERCENT of its size, then down to --target-usage: the high mark of the kubelet\'s image GC' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l every -d 'Keep running: prune every DURATION (plus up to 10% at random) until SIGTERM or SIGINT, one summary line per run on stderr instead of the table' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l metrics-file -d 'After each run, write Prometheus metrics to FILE (node_exporter\'s textfile format)' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l state-file -d 'Where crimg remembers when it last saw each image in use' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l dry-run -d 'Decide and report, remove nothing'
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l no-trunc -d 'Print every cell in full, even when the table is wider than the terminal'
complete -c crimg -n "__fish_crimg_using_subcommand prune" -l no-builtin-allowlist -d 'Drop the built-in allowlist of pause and Kubernetes system images (the runtime\'s sandbox image stays protected)'
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand prune" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand import" -l platform -d 'Import this platform (os/arch[/variant]; repeatable) [default: the host\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand import" -l snapshotter -d 'Snapshotter to unpack into [default: the CRI\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand import" -l base-name -d 'Repository for OCI archives whose index names images by bare tags' -r
complete -c crimg -n "__fish_crimg_using_subcommand import" -l state-file -d 'With --watch: where to remember what was imported [default: $CRIMG_STATE_DIR/import-watch.json, else /var/lib/crimg/import-watch.json]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand import" -l recheck-interval -d 'With --watch --pin: how often to check that what the directories hold is still imported and pinned, and restore what is not (a deleted image is also restored on containerd\'s delete event)' -r
complete -c crimg -n "__fish_crimg_using_subcommand import" -l metrics-file -d 'With --watch: after each import, write Prometheus metrics to FILE (node_exporter\'s textfile format)' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand import" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand import" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand import" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand import" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand import" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand import" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand import" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand import" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand import" -l pin -d 'Pin every imported image'
complete -c crimg -n "__fish_crimg_using_subcommand import" -l all-platforms -d 'Import every platform of multi-platform images'
complete -c crimg -n "__fish_crimg_using_subcommand import" -l no-unpack -d 'Store content only; do not unpack into a snapshotter'
complete -c crimg -n "__fish_crimg_using_subcommand import" -l watch -d 'Keep running and import archives that appear or change in the given directories'
complete -c crimg -n "__fish_crimg_using_subcommand import" -l unpin-removed -d 'With --watch: when an archive leaves the directory, drop the pins crimg set on its images'
complete -c crimg -n "__fish_crimg_using_subcommand import" -l poll -d 'With --watch: rescan the directories every 5s instead of waiting for inotify, for filesystems whose changes inotify does not see (NFS, CIFS, FUSE, a directory written from another host)'
complete -c crimg -n "__fish_crimg_using_subcommand import" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand import" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand import" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand export" -s O -l output-file -d 'The archive to write (`-` for standard output)' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand export" -l from-file -d 'Also the images named in FILE, one per line (# comments), or `-` for stdin' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand export" -l platform -d 'Export this platform (os/arch[/variant]; repeatable) [default: the host\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand export" -l compress -d 'Compress the whole archive [default: as FILE\'s name says: .tar.gz, .tgz, .tar.zst, .tzst; a name and --compress that disagree are refused]' -r -f -a "gzip\t''
zstd\t''"
complete -c crimg -n "__fish_crimg_using_subcommand export" -l registry-config-dir -d 'containerd\'s registry hosts directory (hosts.toml files), for --fetch-missing' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand export" -l registries-yaml -d 'K3s\'s registries.yaml, for --fetch-missing' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand export" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand export" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand export" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand export" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand export" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand export" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand export" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand export" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand export" -l all-platforms -d 'Export every platform the content store holds'
complete -c crimg -n "__fish_crimg_using_subcommand export" -l fetch-missing -d 'Fetch blobs missing from the content store from the image\'s registry first'
complete -c crimg -n "__fish_crimg_using_subcommand export" -l force -d 'Overwrite FILE if it exists'
complete -c crimg -n "__fish_crimg_using_subcommand export" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand export" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand export" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -l base-name -d 'Repository for OCI archives whose index names images by bare tags (as import)' -r
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -l no-verify -d 'Read the metadata only: no blob is hashed (a plain tar: its headers only)'
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand check" -l registry-config-dir -d 'containerd\'s registry hosts directory, for where --fetch-missing would fetch from' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand check" -l registries-yaml -d 'K3s\'s registries.yaml, for where --fetch-missing would fetch from' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand check" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand check" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand check" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand check" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand check" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand check" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand check" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand check" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand check" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand check" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand check" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s r -l runtime-endpoint -d 'CRI runtime service: unix:///path or a bare path [default: crictl config, then the first socket that exists of containerd, K3s, CRI-O, cri-dockerd]' -r
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s i -l image-endpoint -d 'CRI image service [default: the runtime endpoint]' -r
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s a -l address -d 'containerd API socket [default: the CRI endpoint when the runtime is containerd, else /run/containerd/containerd.sock, then K3s\'s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s n -l namespace -d 'containerd namespace' -r
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s c -l config -d 'crictl\'s YAML config file (runtime-endpoint, image-endpoint, timeout) [default: /etc/crictl.yaml if it exists]' -r -F
complete -c crimg -n "__fish_crimg_using_subcommand completions" -l timeout -d 'Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it [default: 10s]' -r
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s o -l output -d 'Output format where a command prints records' -r -f -a "table\t'A table that fits the terminal'
wide\t'A table with digests and creation times'
json\t'JSON on stdout'
name\t'One reference per line'"
complete -c crimg -n "__fish_crimg_using_subcommand completions" -l progress -d 'Progress bars on stderr (auto: only when stderr is a terminal)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s q -l quiet -d 'Only errors on stderr; no progress'
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s v -l verbose -d 'Diagnostics on stderr'
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c crimg -n "__fish_crimg_using_subcommand completions" -s V -l version -d 'Print version'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "list" -d 'List images with their tags, size, pins, users and protections'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "pin" -d 'Pin images so that no garbage collection or prune removes them'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "unpin" -d 'Remove the pins of images'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "prune" -d 'Remove every image that nothing uses and nothing protects, saying why for each'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "import" -d 'Import image archives (OCI or docker save, any compression) into containerd'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "export" -d 'Write images to one archive that ctr import and docker load both accept'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "inspect" -d 'What archives hold and whether they are intact, read as import reads them (no runtime)'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "check" -d 'Whether images are complete in the content store and unpacked, and what an export would fetch'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c crimg -n "__fish_crimg_using_subcommand help; and not __fish_seen_subcommand_from list pin unpin prune import export inspect check completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
