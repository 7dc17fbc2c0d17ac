# cachedir.sh sets KSHOP_CACHE_DIR: where built tools and the test servers' data live,
# always outside the work tree so a clean clone stays clean and builds are reused.
# As root the default is /var/cache/kshop (the postgres user must be able to reach
# PostgreSQL's data there, which it cannot under /root); otherwise ~/.cache/kshop.
if [ -z "${KSHOP_CACHE_DIR:-}" ]; then
	if [ "$(id -u)" = 0 ]; then
		KSHOP_CACHE_DIR=/var/cache/kshop
	else
		KSHOP_CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kshop"
	fi
fi
export KSHOP_CACHE_DIR
mkdir -p "$KSHOP_CACHE_DIR"
