"""opush: an Exchange ActiveSync server on Twisted, successor of Linagora's Opush."""

__version__ = "0.1.0"
