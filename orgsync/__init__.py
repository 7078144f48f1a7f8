"""orgsync keeps a Feishu (Lark) directory in step with an HR system."""

__version__ = "0.1.0"
