from vlpipe.cli import main

main()
