from bpstudy.cli import main

main()
