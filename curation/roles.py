"""Who may do what. Curators (the "curators" group, or staff) also start and cancel jobs and manage datasets; any
other signed-in user is a reviewer, who reads and decides, and does not see the server's paths."""
import re

CURATORS_GROUP = "curators"


def user_is_curator(user):
    if not user or not user.is_authenticated:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return user.groups.filter(name=CURATORS_GROUP).exists()


# --- what reviewers see of the server -------------------------------------------------------------------------
# Reviewers see dataset names, never the server's paths (an import's source folder, --init weights, a path quoted in
# a job's message or error): they tell an outsider where the data lives and what the server's disk looks like.
SERVER_PATH = "<server path>"
# Job parameters whose value is a path on the server (except a run reference such as init "run:3").
PATH_PARAMS = frozenset({"path", "source", "init", "out", "output", "dir", "directory", "file", "manifest"})
# An absolute path in free text: "/" (or "~/", "C:\") and at least one more segment, not part of a URL or a word.
_PATH_IN_TEXT = re.compile(r"(?<![\w:/.~-])(?:~|[A-Za-z]:)?[/\\](?:[^\s/\\'\"<>]+[/\\])+[^\s'\"<>,;)]*")


def _path_like(text):
    return bool(_PATH_IN_TEXT.fullmatch(text.strip())) or text.startswith(("/", "~/", "\\"))


def text_paths_hidden(text):
    """`text` with every absolute path in it replaced by SERVER_PATH."""
    return _PATH_IN_TEXT.sub(SERVER_PATH, text) if isinstance(text, str) else text


def paths_hidden(value, key=None):
    """A copy of a job's params or result (JSON: dicts, lists, strings, numbers) with server paths hidden: the value
    of a path parameter (PATH_PARAMS; a relative path inside a dataset, "happy/1.png", is kept) and any absolute
    path in any string."""
    if isinstance(value, dict):
        return {k: paths_hidden(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [paths_hidden(v) for v in value]
    if isinstance(value, str):
        if key in PATH_PARAMS and _path_like(value):
            return SERVER_PATH
        return text_paths_hidden(value)
    return value


def shown_to(user, value, text=False):
    """`value` (params or result; or free text with `text`) as `user` may see it: whole for curators, server paths
    hidden for reviewers."""
    if user_is_curator(user):
        return value
    return text_paths_hidden(value) if text else paths_hidden(value)
