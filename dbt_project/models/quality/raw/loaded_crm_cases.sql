{{ loaded_rows(source('crm', 'crm_cases'), 'crm_cases') }}
