from genfab.operator.main import main

main()
