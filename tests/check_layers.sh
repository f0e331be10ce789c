#!/bin/sh
# check_layers.sh — `make check-layers`: every #include of a project header
# follows the layering (README.md's layout; the Makefile's INC_* include
# paths are the same table), and the lower layers include no library of a
# higher one (the learner knows nothing of Kafka, Redis, libevent or events
# on the wire). Prints each offending include as "file:line: ..." and exits 1;
# silent and 0 when the tree is clean. Run from the repository's root.
#
#   daemon → store → proto;  daemon → learner;  cli → data → learner;
#   everything → base;  learner and proto include neither store nor daemon.

# folder: the folders whose headers it may include (its own always)
allowed() {
    case $1 in
    base) echo "" ;;
    learner) echo "base" ;;
    proto) echo "base" ;;
    store) echo "proto base" ;;
    data) echo "learner base" ;;
    cli) echo "data learner proto store base" ;;
    daemon) echo "learner proto store base" ;;
    esac
}
# folder: system headers it may not include (a prefix of the <...> name)
forbidden_libs() {
    case $1 in
    base | learner | data) echo "hiredis/ librdkafka/ event2/ jansson.h systemd/ ini.h" ;;
    proto) echo "hiredis/ librdkafka/ event2/ systemd/ ini.h cblas.h" ;;
    store) echo "librdkafka/ systemd/ ini.h cblas.h" ;;
    esac
}
LAYERS="base learner proto store data cli daemon"

# The folder that holds a header named by a bare "name.h", or "" (none does).
owner() {
    for d in $LAYERS; do
        [ -e "$d/$1" ] && { echo "$d"; return; }
    done
}

bad=0
# Includes name headers bare ("table.h") and the -I paths find them, so a
# name may live in one folder only.
for h in $(for d in $LAYERS; do ls "$d"; done | grep '\.h$' | sort | uniq -d); do
    echo "$(ls $(for d in $LAYERS; do echo "$d/$h"; done) 2>/dev/null | tr '\n' ' '): one header name in two folders" >&2
    bad=1
done
for layer in $LAYERS; do
    ok="$layer $(allowed "$layer")"
    libs=$(forbidden_libs "$layer")
    for f in "$layer"/*.c "$layer"/*.h; do
        [ -e "$f" ] || continue
        # "line:name" of each quoted include
        for hit in $(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
                     sed 's/^\([0-9]*\):.*"\([^"]*\)".*/\1:\2/'); do
            line=${hit%%:*}
            name=${hit#*:}
            case $name in
            */*) # a path: relative to the including file's folder
                dir=$(cd "$(dirname "$f")/$(dirname "$name")" 2>/dev/null && pwd -P)
                root=$(pwd -P)
                from=${dir#"$root"/}
                from=${from%%/*} ;;
            *) if [ -e "$layer/$name" ]; then from=$layer; else from=$(owner "$name"); fi ;;
            esac
            if [ -z "$from" ]; then
                case $name in
                *.inc) continue ;; # generated into build/gen (daemon/dashboard.inc)
                esac
                echo "$f:$line: includes \"$name\", which is no header of base/ learner/ proto/ store/ data/ cli/ daemon/ (a library's header goes in <...>)" >&2
                bad=1
                continue
            fi
            case " $ok " in
            *" $from "*) ;;
            *) echo "$f:$line: includes \"$name\" ($from/), but $layer/ may include only: ${ok# }" >&2
               bad=1 ;;
            esac
        done
        for lib in $libs; do
            hits=$(grep -n "^[[:space:]]*#[[:space:]]*include[[:space:]]*<$lib" "$f" | cut -d: -f1)
            for line in $hits; do
                echo "$f:$line: includes <$lib...>, which $layer/ may not use" >&2
                bad=1
            done
        done
    done
done
[ "$bad" -eq 0 ] || { echo "check-layers: includes against the layering (see README.md, Layout)" >&2; exit 1; }
