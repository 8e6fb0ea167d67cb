"""Imported by the fork server that sweep workers are forked from (bpstudy.sweep.pool):
the import itself warms the server up, so that every forked worker starts warm."""

from bpstudy.sweep.worker import warm_up

warm_up()
