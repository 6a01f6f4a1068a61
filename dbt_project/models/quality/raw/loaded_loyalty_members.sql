{{ loaded_rows(source('loyalty', 'loyalty_members'), 'loyalty_members') }}
