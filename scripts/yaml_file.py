"""Reads the project's YAML files (rules, promtool tests, deploy configs) with PyYAML.

`yaml.safe_load` with two additions the linters rely on:
  - a key that appears twice in one mapping is an error (PyYAML would silently keep the
    last one, and a lint would then check a file other than the one Prometheus reads);
  - every error names the file and the 1-based line: `path:line: message`.
Debian package: python3-yaml.
"""
import yaml


class Error(Exception):
    pass


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise Error(f"{self.name}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                            f"(first at line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def load(path):
    """The document in `path`; raises OSError or Error (with file and line)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    loader = _StrictLoader(text)
    loader.name = path
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        what = (e.problem or "syntax error") + (f" ({e.context})" if e.context else "")
        raise Error(f"{path}{line}: {what}") from None
    except yaml.YAMLError as e:
        raise Error(f"{path}: {e}") from None
    finally:
        loader.dispose()
