from vistr_cli.app import main

main()
