from vmconsole.cli.main import run

run()
