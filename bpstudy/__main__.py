from bpstudy.cli import entry

entry()
