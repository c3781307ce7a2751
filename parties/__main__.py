from parties.cli import main

main()
