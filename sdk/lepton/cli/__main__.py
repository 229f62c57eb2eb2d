from lepton.cli.main import main

main()
